"""The login, code, signup and email-link counters keep their keys and limits
(app/accounts/throttle.py)."""

from __future__ import annotations

from typing import Any

import pytest

from app.accounts.throttle import (
    LINKS_PER_ACCOUNT,
    SIGNUPS_PER_ADDRESS,
    CodeThrottle,
    LoginThrottle,
    TooManyCodes,
)
from app.lib.attempts import MemoryAttempts
from app.lib.errors import ValidationFailed

SCOPE: dict[str, Any] = {"client": ("198.51.100.4", 4000), "headers": []}
ADDRESS = "198.51.100.4"


@pytest.fixture
def throttle() -> LoginThrottle:
    return LoginThrottle(MemoryAttempts(window=900), limit=2)


def test_the_login_and_code_counters_are_tiered_alike(throttle: LoginThrottle) -> None:
    login_keys = throttle._keys("Ann@Example.test ", ADDRESS)
    account = login_keys[1][0].removeprefix("login:account:")
    assert login_keys == [
        (f"login:pair:{account}:{ADDRESS}", 2),
        (f"login:account:{account}", 10),
        (f"login:address:{ADDRESS}", 20),
    ]
    assert "ann" not in account  # hashed
    assert CodeThrottle(throttle)._keys(7, ADDRESS) == [
        (f"2fa:pair:7:{ADDRESS}", 2),
        ("2fa:user:7", 10),
        (f"2fa:address:{ADDRESS}", 20),
    ]


async def test_failed_logins_reach_the_limit_and_a_success_clears_the_pair(
    throttle: LoginThrottle,
) -> None:
    assert await throttle.check_login("a@x.test", ADDRESS) is None
    await throttle.login_failed("a@x.test", ADDRESS)
    await throttle.login_failed("a@x.test", ADDRESS)
    throttled = await throttle.check_login("a@x.test", ADDRESS)
    assert throttled is not None and 0 < throttled.retry_after <= 900
    assert await throttle.check_login("b@x.test", ADDRESS) is None
    await throttle.login_succeeded("a@x.test", ADDRESS)
    assert await throttle.check_login("a@x.test", ADDRESS) is None


async def test_signups_count_every_attempt_but_not_refused_ones(throttle: LoginThrottle) -> None:
    for _ in range(SIGNUPS_PER_ADDRESS):
        assert await throttle.signup_attempt(ADDRESS) is None
    assert await throttle.signup_attempt(ADDRESS) is not None
    count, _ = await throttle.counter.count(f"signup:address:{ADDRESS}")
    assert count == SIGNUPS_PER_ADDRESS


async def test_email_links_are_counted_per_purpose_and_account(throttle: LoginThrottle) -> None:
    for _ in range(LINKS_PER_ACCOUNT):
        assert await throttle.email_link_attempt("reset", "a@x.test", ADDRESS) is None
    assert await throttle.email_link_attempt("reset", "a@x.test", ADDRESS) is not None
    assert await throttle.email_link_attempt("verify", "a@x.test", ADDRESS) is None
    assert await throttle.email_link_attempt("reset", "b@x.test", ADDRESS) is None


async def test_code_throttle_run_counts_refusals_and_stops_at_the_limit(
    throttle: LoginThrottle,
) -> None:
    codes = CodeThrottle(throttle)

    async def wrong() -> None:
        raise ValidationFailed("Wrong code.", field="code")

    for _ in range(2):
        with pytest.raises(ValidationFailed):
            await codes.run(7, SCOPE, wrong)
    with pytest.raises(TooManyCodes) as refused:
        await codes.run(7, SCOPE, wrong)
    assert refused.value.status_code == 429
    await codes.succeeded(7, SCOPE)
    assert await codes.check(7, SCOPE) is None
