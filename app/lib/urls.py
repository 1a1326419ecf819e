"""Building URLs from values that users and API callers choose."""

from __future__ import annotations

from urllib.parse import quote


def path_segment(value: str) -> str:
    """`value` percent-encoded as one URL path segment: `/`, `?`, `#`, `%`, spaces and
    non-ASCII letters included, so `/customers/{path_segment(id)}` routes back to `id`."""
    return quote(value, safe="")
