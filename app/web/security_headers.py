"""The security headers every browser page carries (pages, redirects, error pages, static files).

The policy allows only the portal's own files: no inline script or style, no `style=`
attribute, no eval (htmx runs with `allowEval` off and its indicator styles in app.css), no
plugins, no `<base>`, and no framing by any site. `form-action` is left out on purpose: the
checkout and card forms are answered by a 303 to Stripe's hosted pages (or the emulator's),
and browsers apply `form-action` to that redirect too.
"""

from __future__ import annotations

from urllib.parse import urlparse

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"

_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}

# An email's HTML shown inside the admin outbox page: its own inline styles render, nothing
# loads or runs (`sandbox`), and only the portal's own pages may frame it.
EMAIL_PREVIEW_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox; "
    "frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}


def page_headers(public_url: str, image_origin: str | None = None) -> dict[str, str]:
    """The headers for every page; HSTS only when the portal is served over https (over
    plain http a browser ignores it, and a local http setup must stay reachable).
    `image_origin`: an https origin images may also come from (BRAND_LOGO_URL's)."""
    headers = dict(_PAGE_HEADERS)
    if image_origin:
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "img-src 'self'", f"img-src 'self' {image_origin}"
        )
    if urlparse(public_url).scheme == "https":
        headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
    return headers
