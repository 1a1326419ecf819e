"""Reading the request's session where there may be none (app/accounts/sessions.py,
user_sessions.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from app.accounts.sessions import session_value
from app.accounts.user_sessions import SESSION_KEY, login_key


def connection(session: Any) -> Any:
    scope: dict[str, Any] = {} if session is None else {"session": session}
    return SimpleNamespace(scope=scope)


def test_a_value_of_the_session() -> None:
    assert session_value(connection({"user_id": 3}), "user_id") == 3
    assert session_value(connection({"user_id": 3}), "org") is None


@pytest.mark.parametrize("session", [None, {}, "not a dict"])
def test_no_session_has_no_values(session: Any) -> None:
    assert session_value(connection(session), "user_id") is None
    assert login_key(connection(session)) is None


def test_the_login_key_is_a_string_or_none() -> None:
    assert login_key(connection({SESSION_KEY: "abc"})) == "abc"
    assert login_key(connection({SESSION_KEY: 12})) is None
