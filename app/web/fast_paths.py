"""Where the app departs from the framework's defaults for speed, all in one place.

Each shim here was measured under load (the figures, and how to measure again, are in
docs/performance.md, "Shims"); each keeps the framework's behaviour for what the app uses.
"""

from __future__ import annotations

import gc
import os
from datetime import timedelta

from litestar import Request
from litestar.connection.base import empty_receive, empty_send
from litestar.plugins.htmx import HTMXDetails, HTMXRequest
from litestar.response.base import ASGIResponse
from litestar.stores.base import StorageObject
from litestar.stores.file import FileStore, _safe_file_name
from litestar.types import Receive, Scope, Send

# Young-generation threshold and the two older ones (CPython's default: 700, 10, 10).
GC_THRESHOLDS = (10_000, 10, 10)


class PageRequest(HTMXRequest):
    """The app's request class: Litestar's `HTMXRequest` with `htmx` built on each use rather
    than stored. The stored details point back at the request, a reference cycle that leaves
    every page request's objects to the cyclic garbage collector; built on use, they go with
    the request."""

    __slots__ = ()

    def __init__(
        self, scope: Scope, receive: Receive = empty_receive, send: Send = empty_send
    ) -> None:
        # Request's own initialiser: HTMXRequest's would store the details.
        Request.__init__(self, scope, receive, send)

    @property
    def htmx(self) -> HTMXDetails:  # type: ignore[override]
        return HTMXDetails(self)


class JsonBody(ASGIResponse):
    """JSON bytes sent as they are, in two ASGI messages, with two fixed headers. No cookies,
    no background tasks: for the API's hot paths only."""

    __slots__ = ("_payload", "_status")

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self._payload = body
        self._status = status_code

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self._status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._payload, "more_body": False})


def json_response(body: bytes, status_code: int = 200) -> ASGIResponse:
    """JSON encoded by the caller, sent as it is. Handlers returning this document their body
    with `responses=`."""
    return JsonBody(body, status_code)


class LocalFileStore(FileStore):
    """Litestar's `FileStore` reading on the event loop: a session is a file of a hundred
    bytes in the page cache, which `open` and `read` return in microseconds, while the
    store's own read goes to a worker thread and back (a thread hop per page request, which
    under load waits for the GIL). Writes, renewals and deletes stay as they were."""

    __slots__ = ()

    def with_namespace(self, namespace: str) -> LocalFileStore:
        return LocalFileStore(super().with_namespace(namespace).path)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        if renew_for:
            return await super().get(key, renew_for)
        # The store's own file name, joined as text: its `anyio.Path` took a tenth of a page
        # served from the page cache.
        name = os.path.join(os.fspath(self.path), _safe_file_name(key))
        try:
            with open(name, "rb") as handle:  # noqa: ASYNC230 (see the class docstring)
                stored = StorageObject.from_bytes(handle.read())
        except FileNotFoundError:
            return None
        if stored.expired:
            await self._path_from_key(key).unlink(missing_ok=True)
            return None
        return stored.data


def tune_collector() -> None:
    """For a process that serves only this app (an ASGI server's worker), once started.

    Everything alive now (modules, routes, the catalog, compiled statements) lives as long as
    the process: freezing it keeps the collector from walking it again and again. Requests
    leave no cyclic garbage (`PageRequest`), so young collections can run less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


__all__ = [
    "GC_THRESHOLDS",
    "JsonBody",
    "LocalFileStore",
    "PageRequest",
    "json_response",
    "tune_collector",
]
