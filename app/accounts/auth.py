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
from app.accounts.two_factor import has_two_factor
from app.accounts.user_sessions import SESSION_KEY, SessionRegistry, hash_session_key, login_key
from app.config import Settings
from app.customers.models import RANK, Customer
from app.lib.clock import utcnow

# Paths reachable without a login. The API authenticates with its own Bearer keys.
PUBLIC_PATHS = [
    "^/$",
    "^/login",
    "^/signup",
    "^/forgot",
    "^/reset/",
    "^/verify/",
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
# The session key of the current organization (a customer id) the user switched to.
ORG_KEY = "org"


@dataclass(frozen=True)
class OrgAccess:
    """The organization (billing account) the request acts for and the user's role in it."""

    customer_id: int
    name: str
    role: str  # owner | billing_admin | member (app/customers/models.py)
    count: int = 1  # how many organizations the user belongs to (a switcher from 2)
    # (customer id, name) of each, for the navigation's switcher: read only when count > 1.
    choices: tuple[tuple[int, str], ...] = ()

    def can(self, minimum: str) -> bool:
        """True when the role may do what needs at least `minimum` (templates hide the rest)."""
        return RANK.get(self.role, -1) >= RANK[minimum]


@dataclass(frozen=True)
class CurrentUser:
    id: int
    email: str
    name: str
    is_admin: bool
    email_verified: bool = True
    # The login's `user_sessions` row (app/accounts/user_sessions.py).
    session_id: int | None = None
    # REQUIRE_ADMIN_2FA is on and this admin has no two-factor login yet: no admin page.
    two_factor_missing: bool = False
    # The current organization and the user's role in it; None: they belong to none.
    org: OrgAccess | None = None


def org_name(customer: Customer) -> str:
    """How an organization (a `Customer`) is named on pages."""
    return str(customer.name or customer.email or customer.external_id)


def org_access(
    customer: Customer | None,
    role: str | None,
    count: int = 1,
    choices: tuple[tuple[int, str], ...] = (),
) -> OrgAccess | None:
    if customer is None or role is None:
        return None
    return OrgAccess(customer.id, org_name(customer), role, count, choices)


def login_session(user_id: int, key: str, org_id: int | None = None) -> dict[str, Any]:
    session = {"user_id": user_id, "auth_at": int(utcnow().timestamp()), SESSION_KEY: key}
    return session if org_id is None else {**session, ORG_KEY: org_id}


async def start_login(
    connection: ASGIConnection[Any, Any, Any, Any],
    registry: SessionRegistry,
    user_id: int,
    org_id: int | None = None,
) -> None:
    """Log `user_id` in: a new login (`user_sessions` row) under a newly issued session id
    (never the one the request carried); the login the session held before ends. `org_id`:
    the organization to show first (else their personal one)."""
    previous = login_key(connection)
    if previous is not None:
        await registry.close(previous)
    key = await registry.open_for(connection.scope, user_id)
    renew_session(connection, login_session(user_id, key, org_id))


def build_session_auth(
    settings: Settings, db_session: Any
) -> SessionAuth[CurrentUser, ServerSideSessionBackend]:
    """`db_session(connection)` returns the request's AsyncSession."""

    async def retrieve_user(
        session: dict[str, Any], connection: ASGIConnection[Any, Any, Any, Any]
    ) -> CurrentUser | None:
        user_id, auth_at = session.get("user_id"), session.get("auth_at")
        key = session.get(SESSION_KEY)
        if not isinstance(user_id, int) or not isinstance(auth_at, int) or not isinstance(key, str):
            return None
        now = utcnow()
        if now.timestamp() - auth_at > settings.session_max_age:
            return None
        db: AsyncSession = db_session(connection)
        org_id = session.get(ORG_KEY)
        found = await UserRepository(db).signed_in(
            user_id, hash_session_key(key), org_id if isinstance(org_id, int) else None
        )
        if found is None:
            return None
        user, customer, role, organizations, login = found
        choices: tuple[tuple[int, str], ...] = ()
        if organizations > 1:  # the switcher's list (a second statement, for them only)
            choices = tuple(
                (other.id, org_name(other))
                for other in await UserRepository(db).organizations(user_id)
            )
        if login is None or login.revoked_at is not None:  # logged out from another session
            return None
        await SessionRegistry(db, settings.session_max_age).touch(login, now)
        # The request's own session loaded it: `provide_current_customer` needs no query.
        connection.scope[USER_CUSTOMER] = customer  # type: ignore[literal-required]
        return CurrentUser(
            id=user.id,
            email=user.email,
            name=user.name,
            is_admin=user.is_admin,
            email_verified=user.email_verified_at is not None,
            session_id=login.id,
            two_factor_missing=(
                settings.require_admin_2fa
                and user.is_admin
                and not await has_two_factor(db, user.id)
            ),
            org=org_access(customer, role, organizations, choices),
        )

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
