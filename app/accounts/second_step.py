"""A login between its two steps: the password was right, the two-factor code is to come.

Such a session is not logged in (it holds no `user_id`, so `retrieve_user` finds nobody): it
remembers, under a newly issued session id, whose login waits and where to go after, for
`PENDING_SECONDS`. The code is asked at `SECOND_STEP_PATH` (app/accounts/two_factor_controllers.py).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.response import Redirect

from app.accounts.sessions import renew_session, session_value
from app.lib.clock import utcnow

SECOND_STEP_PATH = "/login/two-factor"
PENDING = "two_factor_pending"
PENDING_SECONDS = 5 * 60


def begin_second_step(
    connection: ASGIConnection[Any, Any, Any, Any],
    user_id: int,
    next: str,
    org_id: int | None = None,
) -> Redirect:
    """`next` must already be a safe, same-site path; `org_id`: the organization the login
    shows (a portal link naming a member), as `start_login` takes it."""
    pending: dict[str, Any] = {"user_id": user_id, "at": int(utcnow().timestamp()), "next": next}
    if org_id is not None:
        pending["org"] = org_id
    renew_session(connection, {PENDING: pending})
    return Redirect(SECOND_STEP_PATH, status_code=303)


def pending_login(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any] | None:
    """The waiting login (`user_id`, `at`, `next`), unless there is none or it expired."""
    pending = session_value(connection, PENDING)
    if not isinstance(pending, dict) or not isinstance(pending.get("user_id"), int):
        return None
    at = pending.get("at")
    if not isinstance(at, int) or utcnow().timestamp() - at > PENDING_SECONDS:
        return None
    return pending
