"""Bearer API key authentication for /api/v1.

A middleware on the API controllers rather than a guard: Litestar copies the route handler
for every guard call, which cost more than the whole key check on the hot usage paths.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.apikeys.service import KEY_CACHE, AuthenticatedKey, hash_key
from app.apikeys.throttle import KeyFailures
from app.lib.clients import client_address


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
    # Revocations (and plan changes) committed anywhere are applied before the cache is used.
    connection.app.state["changes"].poll()
    digest = hash_key(raw.strip())
    return KEY_CACHE.cached(digest) or await _look_up(connection, digest)


async def _look_up(connection: ASGIConnection[Any, Any, Any, Any], digest: str) -> AuthenticatedKey:
    """A key not cached as valid: looked up unless its address is throttled (app/apikeys/throttle.py)."""
    failures: KeyFailures = connection.app.state["api_key_failures"]
    address = client_address(connection.scope, failures.trusted_proxies)
    wait = None if KEY_CACHE.was_valid(digest) else failures.refused(address)
    if wait is None:
        key = await KEY_CACHE.look_up(connection.app.state["engine"], digest)
        if key is not None:
            return key
        wait = await failures.failed(address)
    if wait is not None:
        raise TooManyRequestsException(
            f"Too many invalid API keys from your address. Try again in {wait} seconds.",
            headers={"Retry-After": str(wait)},
        )
    raise NotAuthorizedException("Invalid or revoked API key.")


class ApiKeyAuthentication(AbstractAuthenticationMiddleware):
    """Every request to a controller carrying it needs a valid key; `request.auth` is the key."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        key = await authenticate_api_key(connection)
        return AuthenticationResult(user=None, auth=key)
