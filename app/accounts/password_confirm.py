"""An action the logged-in user confirms with their password (and, where it asks for one, a
two-factor code): changing the email or the password, deleting the account.

The password typed there is guessed at like a login's, so it is held to the login limits
(app/accounts/throttle.py): a refusal by them comes before the action runs, and a wrong
password counts as a failed login, a wrong code as a wrong two-factor code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from app.accounts.auth import CurrentUser
from app.accounts.throttle import CodeThrottle, LoginThrottle
from app.lib.errors import DomainError

T = TypeVar("T")


@dataclass(frozen=True)
class Refusal:
    """Why the action did not run: the message for the form, its status, the form field it
    names (if any), and the seconds to wait when the limits refused it (a 429)."""

    message: str
    status_code: int
    field: str | None = None
    retry_after: int | None = None


async def confirm_with_password(
    login_throttle: LoginThrottle,
    scope: Any,
    user: CurrentUser,
    action: Callable[[], Awaitable[T]],
    *,
    wrong_login_field: str,
    wrong_code_field: str | None = None,
    link_purpose: str | None = None,
) -> T | Refusal:
    """`action()`, which checks the password (and the code, with `wrong_code_field`), unless
    a limit refuses it first: the login limits; the code limits with `wrong_code_field`; the
    email-link limits with `link_purpose` (the action sends a link). A `DomainError` it raises
    becomes a `Refusal`; one naming `wrong_login_field` counts as a failed login, one naming
    `wrong_code_field` as a wrong two-factor code."""
    address = login_throttle.address(scope)
    codes = CodeThrottle(login_throttle) if wrong_code_field is not None else None
    throttled = await login_throttle.check_login(user.email, address)
    if throttled is None and codes is not None:
        throttled = await codes.check(user.id, scope)
    if throttled is None and link_purpose is not None:
        throttled = await login_throttle.email_link_attempt(link_purpose, user.email, address)
    if throttled is not None:
        return Refusal(throttled.message, 429, retry_after=throttled.retry_after)
    try:
        return await action()
    except DomainError as exc:
        field = exc.extra.get("field")
        if field == wrong_login_field:
            await login_throttle.login_failed(user.email, address)
        elif codes is not None and field == wrong_code_field:
            await codes.failed(user.id, scope)
        return Refusal(exc.message, exc.status_code, field=field)
