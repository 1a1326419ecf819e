"""Bearer API key authentication for /api/v1."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from app.apikeys.service import KEY_CACHE


async def requires_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    header = connection.headers.get("authorization", "")
    scheme, _sep, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise NotAuthorizedException("Send your API key as 'Authorization: Bearer <key>'.")
    key = await KEY_CACHE.authenticate(connection.app.state["engine"], raw.strip())
    if key is None:
        raise NotAuthorizedException("Invalid or revoked API key.")
    connection.scope["api_key"] = key  # type: ignore[typeddict-unknown-key]
