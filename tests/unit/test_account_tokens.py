"""The rules of emailed tokens (app/accounts/tokens.py) and the login list's browser names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.accounts.models import AccountToken
from app.accounts.tokens import (
    LIFETIMES,
    TOKEN_MAX,
    Purpose,
    TokenState,
    hash_token,
    new_token,
    token_state,
)
from app.accounts.user_sessions import describe_user_agent, hash_session_key

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def row(purpose: str = Purpose.PASSWORD_RESET, **values: object) -> AccountToken:
    defaults: dict[str, object] = {
        "user_id": 1,
        "token_hash": "x",
        "expires_at": NOW + timedelta(hours=1),
        "used_at": None,
    }
    return AccountToken(purpose=purpose, **{**defaults, **values})


def test_a_fresh_token_of_the_right_purpose_is_valid() -> None:
    assert token_state(row(), Purpose.PASSWORD_RESET, NOW) is TokenState.VALID


def test_a_used_token_is_used_even_before_it_expires() -> None:
    used = row(used_at=NOW - timedelta(minutes=5))
    assert token_state(used, Purpose.PASSWORD_RESET, NOW) is TokenState.USED


@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=1), timedelta(days=3)])
def test_a_token_expires_at_its_expiry(late: timedelta) -> None:
    expiring = row(expires_at=NOW - late)
    assert token_state(expiring, Purpose.PASSWORD_RESET, NOW) is TokenState.EXPIRED


def test_one_second_before_expiry_it_still_works() -> None:
    assert (
        token_state(row(expires_at=NOW + timedelta(seconds=1)), Purpose.PASSWORD_RESET, NOW)
        is TokenState.VALID
    )


def test_a_naive_stored_expiry_is_read_as_utc() -> None:
    naive = row(expires_at=(NOW + timedelta(minutes=1)).replace(tzinfo=None))
    assert token_state(naive, Purpose.PASSWORD_RESET, NOW) is TokenState.VALID


def test_a_token_of_another_purpose_is_as_good_as_none() -> None:
    assert token_state(row(Purpose.VERIFY_EMAIL), Purpose.PASSWORD_RESET, NOW) is (
        TokenState.UNKNOWN
    )
    assert token_state(None, Purpose.PASSWORD_RESET, NOW) is TokenState.UNKNOWN


def test_tokens_are_random_url_safe_and_only_their_hash_is_kept() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert len(token) <= TOKEN_MAX
        assert token.replace("-", "").replace("_", "").isalnum()
        digest = hash_token(token)
        assert len(digest) == 64 and token not in digest
    assert hash_token("abc") == hash_token("abc") != hash_token("abd")


def test_a_reset_link_lives_one_hour() -> None:
    assert LIFETIMES[Purpose.PASSWORD_RESET] == timedelta(hours=1)
    assert all(lifetime > timedelta(0) for lifetime in LIFETIMES.values())


def test_session_keys_are_hashed() -> None:
    assert len(hash_session_key("k")) == 64


@pytest.mark.parametrize(
    ("user_agent", "described"),
    [
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Firefox on Linux",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
            "Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Chrome on macOS",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari on iOS",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Mobile Safari/537.36",
            "Chrome on Android",
        ),
        ("curl/8.5.0", "curl"),
        ("", "Unknown browser"),
        ("python-httpx/0.28", "Unknown browser"),
    ],
)
def test_browser_names(user_agent: str, described: str) -> None:
    assert describe_user_agent(user_agent) == described
