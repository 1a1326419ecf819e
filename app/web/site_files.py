"""What every page asks for besides itself (issue 21, items 10 and 13): `/favicon.ico` (the
SVG in static/, for browsers that ask before reading the page's `<link rel="icon">`),
`/brand.css` (the BRAND_COLOR's custom properties), and the not-found route that makes an
unknown path a 404 page with the navigation of whoever is logged in."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response, get, route
from litestar.enums import ScopeType
from litestar.exceptions import NotFoundException
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils import normalize_path

from app.config import Settings
from app.web.templating import STATIC_DIR

FAVICON = (STATIC_DIR / "favicon.svg").read_bytes()
# Not-found pages: an unknown path is answered by this route (NotFoundPages), so the session
# middleware has run and the page shows the user's own navigation (no route, no middleware).
NOT_FOUND_PATH = "/_not-found"
NOT_FOUND_OPT = "not_found_page"
_CACHED = {"Cache-Control": "public, max-age=86400"}


@get("/favicon.ico", opt={"public": True}, include_in_schema=False, sync_to_thread=False)
def favicon() -> Response[bytes]:
    return Response(FAVICON, media_type="image/svg+xml", headers=_CACHED)


@get("/brand.css", opt={"public": True}, include_in_schema=False, sync_to_thread=False)
def brand_stylesheet(request: Request[Any, Any, Any]) -> Response[str]:
    settings: Settings = request.app.state.settings
    return Response(settings.brand.stylesheet(), media_type="text/css", headers=_CACHED)


@route(
    NOT_FOUND_PATH,
    http_method=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    opt={NOT_FOUND_OPT: True},
    include_in_schema=False,
    sync_to_thread=False,
)
def not_found() -> None:
    raise NotFoundException()


class NotFoundPages:
    """In front of the app's handler: a browser path no route answers goes to the
    `not_found` route instead, keeping its own path for the page (the API's, webhooks' and
    static files' unknown paths keep their own 404s)."""

    def __init__(self, app: Litestar, handler: ASGIApp) -> None:
        self.router = app.asgi_router
        self.app = handler

    @classmethod
    def install(cls, app: Litestar) -> None:
        app.asgi_handler = cls(app, app.asgi_handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and not scope["path"].startswith(_OWN_404S):
            method = scope["method"]
            try:
                self.router.handle_routing(path=normalize_path(scope["path"]), method=method)
            except NotFoundException:
                scope["path"] = NOT_FOUND_PATH
            except Exception:  # noqa: S110 (a 405 and the like: the app answers as before)
                pass
        await self.app(scope, receive, send)


_OWN_404S = ("/api/", "/webhooks/", "/static/")
