"""What every page asks for besides itself (issue 21, items 10 and 13): `/favicon.ico` (the
SVG in static/, for browsers that ask before reading the page's `<link rel="icon">`),
`/brand.css` (the BRAND_COLOR's custom properties), and the catch-all that makes an unknown
path a 404 page with the navigation of whoever is logged in."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, route
from litestar.exceptions import NotFoundException

from app.config import Settings
from app.web.templating import STATIC_DIR

FAVICON = (STATIC_DIR / "favicon.svg").read_bytes()
# Not-found pages: a route answers every unknown path, so the session middleware has run and
# the page shows the user's own navigation (app/web/errors.py shows it to everyone else).
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
    "/{unknown:path}",
    http_method=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    opt={NOT_FOUND_OPT: True},
    include_in_schema=False,
    sync_to_thread=False,
)
def not_found() -> None:
    raise NotFoundException()
