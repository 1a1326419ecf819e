"""Bearer API key authentication for /api/v1.

A middleware on the API controllers rather than a guard: Litestar copies the route handler
for every guard call, which cost more than the whole key check on the hot usage paths.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.apikeys.service import KEY_CACHE, AuthenticatedKey


def _authorization(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    # The raw ASGI headers (names arrive lower-cased): `connection.headers` would build a
    # Headers object, a tenth of the CPU of a cached balance read.
    for name, value in connection.scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return ""


async def authenticate_api_key(connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticatedKey:
    header = _authorization(connection)
    scheme, _sep, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise NotAuthorizedException("Send your API key as 'Authorization: Bearer <key>'.")
    key = await KEY_CACHE.authenticate(connection.app.state["engine"], raw.strip())
    if key is None:
        raise NotAuthorizedException("Invalid or revoked API key.")
    return key


class ApiKeyAuthentication(AbstractAuthenticationMiddleware):
    """Every request to a controller carrying it needs a valid key; `request.auth` is the key."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        key = await authenticate_api_key(connection)
        return AuthenticationResult(user=None, auth=key)
