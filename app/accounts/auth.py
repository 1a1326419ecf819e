"""Session authentication: who is logged in, for how long, and the login rate limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import ServerSideSessionBackend
from litestar.security.session_auth import SessionAuth
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.repository import UserRepository
from app.accounts.sessions import IssuedSessionConfig, renew_session
from app.config import Settings
from app.lib.clock import utcnow

# Paths reachable without a login. The API authenticates with its own Bearer keys.
PUBLIC_PATHS = [
    "^/$",
    "^/login",
    "^/signup",
    "^/static/",
    "^/schema",
    "^/api/",
    "^/webhooks/",
    "^/health",
    "^/portal/",
    "^/favicon.ico",
]
# No session store round-trip for machine traffic.
SESSIONLESS_PATHS = ["^/api/", "^/webhooks/", "^/static/", "^/health", "^/schema"]


# The scope key under which `retrieve_user` leaves the user's customer (None: they have none).
USER_CUSTOMER = "billing_portal.user_customer"


@dataclass(frozen=True)
class CurrentUser:
    id: int
    email: str
    name: str
    is_admin: bool


def login_session(user_id: int) -> dict[str, Any]:
    return {"user_id": user_id, "auth_at": int(utcnow().timestamp())}


def start_login(connection: ASGIConnection[Any, Any, Any, Any], user_id: int) -> None:
    """Log `user_id` in under a newly issued session id (never the one the request carried)."""
    renew_session(connection, login_session(user_id))


def build_session_auth(
    settings: Settings, db_session: Any
) -> SessionAuth[CurrentUser, ServerSideSessionBackend]:
    """`db_session(connection)` returns the request's AsyncSession."""

    async def retrieve_user(
        session: dict[str, Any], connection: ASGIConnection[Any, Any, Any, Any]
    ) -> CurrentUser | None:
        user_id, auth_at = session.get("user_id"), session.get("auth_at")
        if not isinstance(user_id, int) or not isinstance(auth_at, int):
            return None
        if utcnow().timestamp() - auth_at > settings.session_max_age:
            return None
        db: AsyncSession = db_session(connection)
        found = await UserRepository(db).with_customer(user_id)
        if found is None:
            return None
        user, customer = found
        # The request's own session loaded it: `provide_current_customer` needs no query.
        connection.scope[USER_CUSTOMER] = customer  # type: ignore[literal-required]
        return CurrentUser(id=user.id, email=user.email, name=user.name, is_admin=user.is_admin)

    return SessionAuth[CurrentUser, ServerSideSessionBackend](
        retrieve_user_handler=retrieve_user,
        session_backend_config=IssuedSessionConfig(
            max_age=settings.session_max_age,
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
            exclude=SESSIONLESS_PATHS,
        ),
        exclude=PUBLIC_PATHS,
        exclude_opt_key="public",
    )
