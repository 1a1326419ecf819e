"""Page-or-fragment rendering: one template serves the full page and its HTMX partial."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection.base import empty_receive, empty_send
from litestar.plugins.htmx import HTMXDetails, HTMXRequest
from litestar.response import Redirect, Template
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send


class PageRequest(HTMXRequest):
    """The app's request class: Litestar's `HTMXRequest` with `htmx` built on each use rather
    than stored. The stored details point back at the request, a reference cycle that left
    every page request's objects (scope, headers, middleware state) to the cyclic garbage
    collector; built on use, they go with the request."""

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
    """JSON bytes sent as they are, in two ASGI messages. `ASGIResponse` builds a mutable
    header object on every request (a sixth of a cached balance read's instructions); the
    API's answers need two fixed headers. No cookies, no background tasks."""

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
    """JSON encoded by the caller, sent as it is. For the API's hot paths: Litestar's
    `Response`, built and then converted to an ASGI response on every request, cost about a
    fifth of a balance read, and `ASGIResponse` still a sixth. Handlers returning this
    document their body with `responses=`."""
    return JsonBody(body, status_code)


# Sent with every page(): a fragment and its full page differ (Vary), and neither is cached.
PAGE_HEADERS = {"Vary": "HX-Request", "Cache-Control": "no-store"}


def wants_fragment(request: Request[Any, Any, Any]) -> bool:
    """True for an htmx request that targets a part of the page (not boosted, not history restore)."""
    htmx = getattr(request, "htmx", None)
    if not htmx:
        return False
    return not (htmx.boosted or htmx.history_restore_request)


def page(
    request: Request[Any, Any, Any],
    template: str,
    context: dict[str, Any],
    *,
    fragment: str | None = None,
    status_code: int = 200,
) -> Template:
    """Render `template`, or `fragment` alone when htmx asks for a partial; Vary on HX-Request.

    Every page rendered here shows a logged-in person's live, private data (billing, admin),
    so none is stored by the browser or a proxy: Back after buying credits fetches the page
    again rather than showing the old balance from the cache."""
    name = fragment if fragment and wants_fragment(request) else template
    return Template(
        template_name=name,
        context=context,
        status_code=status_code,
        headers=dict(PAGE_HEADERS),
    )


def redirect(request: Request[Any, Any, Any], path: str) -> Redirect:
    """303 after a form post, so a reload never re-submits (htmx follows it transparently)."""
    return Redirect(path=path, status_code=303)


__all__ = ["HTMXRequest", "PageRequest", "page", "redirect", "wants_fragment"]
