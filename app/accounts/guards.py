from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from app.accounts.auth import CurrentUser


def current_user(connection: ASGIConnection[Any, Any, Any, Any]) -> CurrentUser | None:
    user = connection.scope.get("user")
    return user if isinstance(user, CurrentUser) else None


def logged_in_user(connection: ASGIConnection[Any, Any, Any, Any]) -> CurrentUser:
    """The user of a route behind `requires_user` (which ran first: no user is a 401 there)."""
    user = current_user(connection)
    if user is None:
        raise NotAuthorizedException("Please log in.")
    return user


# Guards are coroutines: Litestar runs a plain function guard in a worker thread (a thread hop
# per guard and request, each waiting for the GIL under load: a tenth of an admin page's CPU).
async def requires_user(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    if current_user(connection) is None:
        raise NotAuthorizedException("Please log in.")


class TwoFactorRequired(PermissionDeniedException):
    """An admin without two-factor login while REQUIRE_ADMIN_2FA is on: sent to turn it on."""


async def requires_admin(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    user = current_user(connection)
    if user is None:
        raise NotAuthorizedException("Please log in.")
    if not user.is_admin:
        raise PermissionDeniedException("This page is for administrators.")
    if user.two_factor_missing:
        raise TwoFactorRequired("Administrators must turn on two-factor login first.")
