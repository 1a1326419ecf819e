"""Page-or-fragment rendering: one template serves the full page and its HTMX partial."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Redirect, Template

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


__all__ = ["page", "redirect", "wants_fragment"]
