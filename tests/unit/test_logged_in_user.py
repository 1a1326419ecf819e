"""`logged_in_user`: the user a `requires_user` route serves, or the 401 (app/accounts/guards.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from litestar.exceptions import NotAuthorizedException

from app.accounts.auth import CurrentUser
from app.accounts.guards import logged_in_user

USER = CurrentUser(id=1, email="u@example.test", name="U", is_admin=False)


def connection(user: Any) -> Any:
    return SimpleNamespace(scope={"user": user})


def test_the_logged_in_user_is_returned() -> None:
    assert logged_in_user(connection(USER)) is USER


@pytest.mark.parametrize("user", [None, {"id": 1}])
def test_no_login_is_a_401(user: Any) -> None:
    with pytest.raises(NotAuthorizedException):
        logged_in_user(connection(user))
