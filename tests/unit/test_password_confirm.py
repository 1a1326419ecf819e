"""Confirming an action with the password (and a two-factor code): the login and code limits
apply, and a wrong answer counts where it belongs (app/accounts/password_confirm.py)."""

from __future__ import annotations

from typing import Any

import pytest

from app.accounts.auth import CurrentUser
from app.accounts.password_confirm import Refusal, confirm_with_password
from app.accounts.throttle import CodeThrottle, LoginThrottle
from app.lib.attempts import MemoryAttempts
from app.lib.errors import Conflict, ValidationFailed

USER = CurrentUser(id=7, email="ann@example.test", name="Ann", is_admin=False)
SCOPE: dict[str, Any] = {"client": ("203.0.113.5", 4000), "headers": []}
LIMIT = 3


@pytest.fixture
def throttle() -> LoginThrottle:
    return LoginThrottle(MemoryAttempts(window=900), limit=LIMIT)


def failing(**extra: Any) -> Any:
    async def action() -> None:
        raise ValidationFailed("Wrong.", **extra)

    return action


async def done() -> str:
    return "done"


async def login_failures(throttle: LoginThrottle) -> int:
    count, _ = await throttle.counter.count(throttle._keys(USER.email, "203.0.113.5")[0][0])
    return count


async def code_failures(throttle: LoginThrottle) -> int:
    count, _ = await throttle.counter.count(
        CodeThrottle(throttle)._keys(USER.id, "203.0.113.5")[0][0]
    )
    return count


async def test_the_action_runs_and_its_result_is_returned(throttle: LoginThrottle) -> None:
    result = await confirm_with_password(
        throttle, SCOPE, USER, done, wrong_login_field="current_password"
    )
    assert result == "done"


async def test_a_wrong_password_is_a_failed_login_and_a_refusal(throttle: LoginThrottle) -> None:
    result = await confirm_with_password(
        throttle,
        SCOPE,
        USER,
        failing(field="current_password"),
        wrong_login_field="current_password",
    )
    assert result == Refusal("Wrong.", 422, field="current_password")
    assert await login_failures(throttle) == 1
    assert await code_failures(throttle) == 0


async def test_a_wrong_code_counts_as_a_wrong_code_only(throttle: LoginThrottle) -> None:
    result = await confirm_with_password(
        throttle,
        SCOPE,
        USER,
        failing(field="code"),
        wrong_login_field="password",
        wrong_code_field="code",
    )
    assert result == Refusal("Wrong.", 422, field="code")
    assert await login_failures(throttle) == 0
    assert await code_failures(throttle) == 1


async def test_other_refusals_count_nowhere(throttle: LoginThrottle) -> None:
    async def conflict() -> None:
        raise Conflict("Not now.")

    result = await confirm_with_password(
        throttle, SCOPE, USER, conflict, wrong_login_field="password", wrong_code_field="code"
    )
    assert result == Refusal("Not now.", 409)
    # Without wrong_code_field a "code" error is not counted either.
    await confirm_with_password(
        throttle, SCOPE, USER, failing(field="code"), wrong_login_field="password"
    )
    assert await login_failures(throttle) == 0
    assert await code_failures(throttle) == 0


async def test_past_the_login_limit_the_action_does_not_run(throttle: LoginThrottle) -> None:
    for _ in range(LIMIT):
        await throttle.login_failed(USER.email, "203.0.113.5")
    ran = []

    async def action() -> None:
        ran.append(True)

    result = await confirm_with_password(
        throttle, SCOPE, USER, action, wrong_login_field="password"
    )
    assert isinstance(result, Refusal)
    assert result.status_code == 429
    assert result.message.startswith("Too many attempts.")
    assert result.field is None
    assert result.retry_after is not None and result.retry_after > 0
    assert ran == []
    assert await login_failures(throttle) == LIMIT  # a refused attempt is not counted


async def test_past_the_code_limit_only_a_code_asking_action_is_refused(
    throttle: LoginThrottle,
) -> None:
    codes = CodeThrottle(throttle)
    for _ in range(LIMIT):
        await codes.failed(USER.id, SCOPE)
    refused = await confirm_with_password(
        throttle, SCOPE, USER, done, wrong_login_field="password", wrong_code_field="code"
    )
    assert isinstance(refused, Refusal) and refused.status_code == 429
    allowed = await confirm_with_password(throttle, SCOPE, USER, done, wrong_login_field="password")
    assert allowed == "done"


async def test_a_link_purpose_counts_the_email_sent_and_refuses_past_its_limit(
    throttle: LoginThrottle,
) -> None:
    results = [
        await confirm_with_password(
            throttle,
            SCOPE,
            USER,
            done,
            wrong_login_field="current_password",
            link_purpose="email_change",
        )
        for _ in range(4)
    ]
    assert results[:3] == ["done"] * 3  # LINKS_PER_ACCOUNT
    assert isinstance(results[3], Refusal) and results[3].status_code == 429
