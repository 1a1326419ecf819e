"""Route guards by role in the current organization (the one in the session, resolved with the
user by `retrieve_user`, app/accounts/auth.py).

Every customer-facing route names the least role it needs: `guards=[requires_role(MEMBER)]`.
A user who belongs to no organization gets the 404 `no_customer`; a role below the route's
gets the 403 page that says their role and whom to ask. tests/integration/organizations/
test_role_matrix.py holds every route of the app to a decision.
"""

from __future__ import annotations

from typing import Any, Protocol

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from app.accounts.auth import OrgAccess
from app.accounts.guards import current_user
from app.lib.errors import Forbidden, NotFound
from app.organizations.roles import WHO_CAN, allows, role_name


class RoleGuard(Protocol):
    minimum_role: str

    async def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None: ...


class RoleForbidden(Forbidden):
    code = "role_forbidden"


def current_org(connection: ASGIConnection[Any, Any, Any, Any]) -> OrgAccess:
    """The current organization of the logged-in user; 401 without a login, 404 `no_customer`
    when they belong to none."""
    user = current_user(connection)
    if user is None:
        raise NotAuthorizedException("Please log in.")
    if user.org is None:
        raise NotFound("No billing account is linked to this login.", code="no_customer")
    return user.org


def check_role(org: OrgAccess, minimum: str) -> None:
    if not allows(org.role, minimum):
        raise RoleForbidden(
            f"Your role in {org.name} is {role_name(org.role)}; "
            f"ask {WHO_CAN.get(minimum, 'an owner')} to do this.",
            role=org.role,
            required=minimum,
        )


def requires_role(minimum: str) -> RoleGuard:
    """A guard: the current organization's role must be `minimum` or above."""

    # A coroutine, as app/accounts/guards.py's: no worker thread per request.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        check_role(current_org(connection), minimum)

    guard.minimum_role = minimum  # type: ignore[attr-defined]
    guard.__qualname__ = f"requires_role({minimum!r})"
    return guard  # type: ignore[return-value]
