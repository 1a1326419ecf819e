"""Values a page must show fresh on every load, even when the page itself is served from the
page cache (app/billing/page_cache.py): a form's `attempt` id (app/web/templating.py) keys
its Stripe action's idempotency, so two loads of one page must never share one.

A render that the cache may keep collects the tokens it drew (`collect()`); the cache stores
the page cut at them and fills in new ones of the same length each time it serves it.
"""

from __future__ import annotations

import contextvars
import secrets

TOKEN_BYTES = 8  # 16 hex digits

_drawn: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "billing_portal_page_tokens", default=None
)


def fresh_token() -> str:
    """A new random id (16 hex digits), noted for the page cache when it is collecting."""
    token = secrets.token_hex(TOKEN_BYTES)
    drawn = _drawn.get()
    if drawn is not None:
        drawn.append(token)
    return token


def collect() -> list[str]:
    """From now on in this context, the tokens drawn are added to the list returned."""
    drawn: list[str] = []
    _drawn.set(drawn)
    return drawn


def new_token() -> bytes:
    return secrets.token_hex(TOKEN_BYTES).encode()


__all__ = ["TOKEN_BYTES", "collect", "fresh_token", "new_token"]
