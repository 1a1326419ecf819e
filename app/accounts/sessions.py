"""Server-side sessions whose ids only the server issues, replaced at every login.

Litestar's `ServerSideSessionBackend` keeps whatever id the cookie carries: an id the store
never issued becomes a session, and a login keeps the id it arrived with, so whoever planted
the cookie (session fixation) shares the account. This backend:

- treats an id the store does not hold as no session: a new id is issued if one is needed;
- replaces the id when the request asked for it (`renew_session`, at every login and logout),
  deleting the old one from the store;
- writes the store only when the session changed (a page view that reads it writes nothing)
  and creates no stored session for a visitor whose session stays empty.
"""

from __future__ import annotations

from typing import Any, cast

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.dataclass import extract_dataclass_items

# Scope keys this backend keeps per request.
_LOADED = "billing_portal.session_loaded"  # (id, raw bytes) of the session the store held
_RENEW = "billing_portal.session_renew"


def _scope(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
    return cast("dict[str, Any]", connection.scope)


def session_value(connection: ASGIConnection[Any, Any, Any, Any], key: str) -> Any:
    """`key`'s value in the request's session; None without it, or without a session (a
    sessionless path such as /api/)."""
    session = connection.scope.get("session")
    return session.get(key) if isinstance(session, dict) else None


def renew_session(connection: ASGIConnection[Any, Any, Any, Any], data: dict[str, Any]) -> None:
    """Set the session to `data` under a new id; the old id is deleted from the store."""
    _scope(connection)[_RENEW] = True
    connection.set_session(data)


class IssuedSessionBackend(ServerSideSessionBackend):
    async def load_from_connection(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> dict[str, Any]:
        session_id = connection.cookies.get(self.config.key)
        if session_id and session_id != "null":
            store = self.config.get_store_from_app(connection.scope["app"])
            data = await self.get(session_id, store=store)
            if data is not None:
                _scope(connection)[_LOADED] = (session_id, data)
                return self.deserialize_data(data)
        return {}

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        """The id of the session the store holds, else the one issued during this request,
        else a new one. A cookie the store does not hold is never reused."""
        loaded: tuple[str, bytes] | None = _scope(connection).get(_LOADED)
        if loaded is not None and not _scope(connection).get(_RENEW):
            return str(loaded[0])
        issued = connection.get_session_id()
        if not issued or (loaded is not None and issued == loaded[0]):
            issued = self.generate_session_id()
            connection._connection_state.session_id = issued
        return issued

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        scope = connection.scope
        store = self.config.get_store_from_app(scope["app"])
        headers = MutableScopeHeaders.from_message(message)
        cookie_params = dict(
            extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys())
        )
        loaded: tuple[str, bytes] | None = _scope(connection).get(_LOADED)
        renew = bool(_scope(connection).get(_RENEW))
        if loaded is not None and (renew or scope_session is Empty or not scope_session):
            await self.delete(loaded[0], store=store)
        if scope_session is Empty or not scope_session:
            if loaded is not None or connection.cookies.get(self.config.key, "null") != "null":
                headers.add(
                    "Set-Cookie",
                    Cookie(value="null", key=self.config.key, expires=0, **cookie_params).to_header(
                        header=""
                    ),
                )
            return
        data = self.serialize_data(scope_session, scope)
        if loaded is not None and not renew and data == loaded[1]:
            return  # unchanged: the store and the browser already hold it
        session_id = self.get_session_id(connection)
        await self.set(session_id=session_id, data=data, store=store)
        headers.add(
            "Set-Cookie",
            Cookie(value=session_id, key=self.config.key, **cookie_params).to_header(header=""),
        )


class IssuedSessionConfig(ServerSideSessionConfig):
    _backend_class = IssuedSessionBackend
