"""The customer pages answered from a per-process cache of rendered pages while nothing they
show has changed, before Litestar.

py-spy on the dashboard under load (docs/performance.md): about half of a page's CPU went to
the ORM (the user, the customer, the subscription, invoices, cards, the chart's days), a
quarter to the templates, the rest to Litestar's middleware and dependency injection and the
ASGI server; no one of them is the tenfold. A page a customer loads again with nothing
changed is answered here with the bytes rendered before, checked as follows, and everything
else goes to the app as before.

What is cached: a `GET` of a customer page (`CACHED_PATHS`, the invoice pages) or of the
admin's overview and customer search (`ADMIN_PATHS`: the admin's own session, as any page;
a non-admin's answer is a 403, never kept) whose answer was a `200` HTML page of a logged-in
user that set no cookie (a new session, a CSRF cookie, a flash message shown and removed from
the session all set one). Its key is everything of the
request the page may depend on: path, query, the whole `Cookie` header (so the session and
its CSRF token), `Host`, `Accept-Language`, `Authorization` (no page reads it) and the
`HX-*` headers but `HX-Current-URL`. Links are boosted (`hx-boost` on every page), so a click
asks `HX-Boosted`: the full page, cached as any other; htmx fragments and history restores go
to the app.

When a cached page is served, all of these hold, checked on every request:

- the session as stored now is byte for byte the one the page was rendered with (read from
  the store each time, as the app does: a logout, a login elsewhere that ends it, a pending
  flash message, a switched organization or anything else kept in it ends the page), its
  login is younger than `SESSION_MAX_AGE`, and it holds no pending flash message (such a
  request always goes to the app, which shows and removes it);
- no write was committed since it was rendered, by this process or one it hears of, that
  may change any page (`VERSIONS.data`, app/db/page_versions.py: every transaction that
  wrote, whatever the table: users, memberships, logins, subscriptions, invoices, cards,
  settings...), nor usage, credits or holds of the customers whose rows the render loaded
  (per customer: the usage writer's batches, here at once and from other processes by their
  `BALANCES` announcements; a page that loaded no customer row is stale after anyone's;
  a page that shows no usage says so while it renders, `shows_no_usage()`, and usage then
  leaves it be: the admin's customer search, and the overview, whose figures are a snapshot
  of their own, `figures_while()`, served only while that snapshot is the current one);
- it is younger than `PAGE_CACHE_SECONDS` by the app's clock and of the same UTC day (pages
  show days left, expired cards and the like, which change with time and no write), and a
  render during which anything above moved was never kept.

A form's `attempt` id, which must be new on every load, is cut out of the stored page and
drawn anew each time it is served (app/web/page_tokens.py). The CSRF token is the session's
cookie's, part of the key. Concurrent misses of one key wait for one render.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
import structlog
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.stores.base import Store
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from sqlalchemy import event

from app.billing.live_poll import _cookies
from app.customers.models import Customer
from app.db.changes import BALANCES, ChangeWatch
from app.db.page_versions import PAGES, VERSIONS, PageVersions
from app.lib.clock import utcnow
from app.web.page_tokens import collect, new_token

PAGE_CACHE_SECONDS = 10.0
CACHED_PATHS = frozenset(
    {
        "/billing",
        "/billing/",
        "/billing/upgrade",
        "/billing/credits",
        "/billing/invoices",
        "/billing/payment-methods",
        "/billing/settings",
    }
)
# The admin's overview and customer search (for the administrator's own session, as any page).
ADMIN_PATHS = frozenset({"/admin/billing", "/admin/billing/", "/admin/billing/customers"})
_INVOICE_PAGE = re.compile(r"/billing/invoices/[^/]+\Z")
_MAX_PAGES = 4096
_MAX_BODY = 1 << 20
_FLASH = b'"_messages"'
_KEYED = (b"host", b"accept-language", b"authorization")
_NOT_HERE = (b"hx-history-restore-request",)
log = structlog.get_logger()


@dataclass(slots=True)
class _Notes:
    """What a render the cache may keep tells of itself."""

    # External ids of the customers whose rows it loaded.
    customers: set[str] = field(default_factory=set)
    # It may show usage, credits or holds (of `customers`, or of anyone when none).
    usage: bool = True
    # Whether the figures it shows are still those it would show (None: no such figures).
    current: Callable[[], bool] | None = None


_notes: contextvars.ContextVar[_Notes | None] = contextvars.ContextVar(
    "billing_portal_page_notes", default=None
)


def shows_no_usage() -> None:
    """The page being rendered shows no usage, credits or holds, of anyone (the admin's
    customer search): the usage writer's batches leave it cached."""
    notes = _notes.get()
    if notes is not None:
        notes.usage = False


def figures_while(current: Callable[[], bool]) -> None:
    """The page being rendered shows figures computed earlier, which are what it would show
    while `current()` is true, and no usage of its own (the admin overview's snapshot,
    app/admin/metrics.py `OverviewCache`): served no longer than that, and left cached by
    usage writes, which its figures take in only when they are computed again."""
    notes = _notes.get()
    if notes is not None:
        notes.usage = False
        notes.current = current


@event.listens_for(Customer, "load")
def _customer_loaded(target: Customer, _context: Any) -> None:
    notes = _notes.get()
    if notes is not None:
        notes.customers.add(target.external_id)


@event.listens_for(Customer, "refresh")
def _customer_refreshed(target: Customer, _context: Any, _attrs: Any) -> None:
    _customer_loaded(target, None)


@dataclass(slots=True)
class _Page:
    expires: float  # time.monotonic()
    rendered_at: datetime
    session: bytes
    auth_at: int
    versions: tuple[int, int, int]
    # (external id, usage stamp) of the customers the render loaded; None: none loaded.
    customers: tuple[tuple[str, int], ...] | None
    # False: it shows no usage (`shows_no_usage`, `figures_while`), so usage leaves it be.
    usage: bool
    current: Callable[[], bool] | None
    headers: list[tuple[bytes, bytes]]
    # The body cut at its fresh tokens: text, token, text, token, ..., text.
    parts: list[bytes]


def is_cached_path(path: str) -> bool:
    return path in CACHED_PATHS or path in ADMIN_PATHS or _INVOICE_PAGE.match(path) is not None


class PageCache:
    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: Store,
        session_cookie: str,
        csrf_cookie: str,
        session_max_age: int,
        changes: ChangeWatch,
        versions: PageVersions = VERSIONS,
        seconds: float = PAGE_CACHE_SECONDS,
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.session_cookie = session_cookie
        self.csrf_cookie = csrf_cookie
        self.session_max_age = session_max_age
        self.changes = changes
        self.versions = versions
        self.seconds = seconds
        self.pages: dict[tuple[Any, ...], _Page] = {}
        self._rendering: dict[tuple[Any, ...], asyncio.Future[_Page | None]] = {}
        changes.on(PAGES, versions.data_changed)
        changes.on(BALANCES, versions.usage_changed)

    @classmethod
    def install(cls, app: Litestar, **kwargs: Any) -> PageCache:
        """Put a `PageCache` in front of `app`'s handler (after `Litestar(...)` built it)."""
        cache = cls(app.asgi_handler, **kwargs)
        app.asgi_handler = cache
        return cache

    def clear(self) -> None:
        self.pages.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = None
        if scope["type"] == ScopeType.HTTP and is_cached_path(scope["path"]):
            request = self._request(scope)
        if request is None:
            await self.app(scope, receive, send)
            return
        key, session_id = request
        try:
            session = await self.sessions.get(session_id)
        except Exception as exc:  # the app reads it again and answers, errors and all
            log.debug("page cache passed on", error=repr(exc))
            session = None
        if session is None or _FLASH in session:
            await self.app(scope, receive, send)
            return
        self.changes.poll()
        page = self.pages.get(key)
        if page is not None and self._valid(page, session):
            await _replay(page, send)
            return
        waiting = self._rendering.get(key)
        if waiting is not None:  # the same page is being rendered: its answer may do
            page = await asyncio.shield(waiting)
            self.changes.poll()  # what other processes announced meanwhile
            if page is not None and self._valid(page, session):
                await _replay(page, send)
            else:
                await self.app(scope, receive, send)
            return
        future: asyncio.Future[_Page | None] = asyncio.get_running_loop().create_future()
        self._rendering[key] = future
        page = None
        try:
            page = await self._render(scope, receive, send, session)
        finally:
            del self._rendering[key]
            future.set_result(page)
        if page is not None:
            self._keep(key, page)

    def _request(self, scope: HTTPScope) -> tuple[tuple[Any, ...], str] | None:
        """The cache key and session id of a request the cache may answer, else None."""
        if scope["method"] != "GET":
            return None
        cookie: bytes | None = None
        keyed: list[bytes] = []
        htmx = boosted = False
        for name, value in scope["headers"]:
            if name == b"cookie":
                if cookie is not None:
                    return None
                cookie = value
            elif name.startswith(b"hx-"):
                if name == b"hx-request":
                    htmx = True
                elif name == b"hx-boosted":
                    boosted = value == b"true"
                elif name in _NOT_HERE:
                    return None
                if name != b"hx-current-url":  # where the link was: no page shows it
                    keyed += (name, value)
            elif name in _KEYED:
                keyed += (name, value)
        if cookie is None or (htmx and not boosted):  # a fragment: not cached
            return None
        cookies = _cookies(cookie.decode("latin-1"))
        session_id = cookies.get(self.session_cookie)
        if not session_id or session_id == "null" or not cookies.get(self.csrf_cookie):
            return None
        return (scope["path"], scope["query_string"], cookie, *keyed), session_id

    def _valid(self, page: _Page, session: bytes) -> bool:
        if page.session != session or page.expires < time.monotonic():
            return False
        now = utcnow()
        if not page.rendered_at <= now < page.rendered_at + timedelta(seconds=self.seconds):
            return False
        if now.date() != page.rendered_at.date():
            return False
        if now.timestamp() - page.auth_at > self.session_max_age:
            return False
        if page.current is not None and not page.current():
            return False
        versions = self.versions
        data, epoch, usage_any = page.versions
        if versions.data != data:
            return False
        if not page.usage:
            return True
        if versions.usage_epoch != epoch:
            return False
        if page.customers is None:
            return versions.usage_any == usage_any
        return all(versions.usage_stamp(c) == stamp for c, stamp in page.customers)

    async def _render(
        self, scope: Scope, receive: Receive, send: Send, session: bytes
    ) -> _Page | None:
        """Let the app answer; what to keep of its answer, if it may be kept."""
        before = self.versions.snapshot()
        rendered_at = utcnow()
        notes = _Notes()
        _notes.set(notes)
        tokens = collect()
        messages: list[Message] = []
        keep = True

        async def capture(message: Message) -> None:
            nonlocal keep
            if keep:
                messages.append(message)
                if len(messages) > 64:
                    keep = False
            await send(message)

        await self.app(scope, receive, capture)
        if not keep or scope.get("user") is None or not self._unchanged_since(before, notes):
            return None
        answer = _answer(messages)
        if answer is None:
            return None
        headers, body = answer
        auth_at = _auth_at(session)
        if auth_at is None:
            return None
        stamps = tuple((c, self.versions.usage_stamp(c)) for c in sorted(notes.customers))
        return _Page(
            expires=time.monotonic() + self.seconds,
            rendered_at=rendered_at,
            session=session,
            auth_at=auth_at,
            versions=(before[0], before[1], before[3]),
            customers=stamps or None,
            usage=notes.usage,
            current=notes.current,
            headers=headers,
            parts=_cut(body, tokens),
        )

    def _unchanged_since(self, before: tuple[int, int, int, int], notes: _Notes) -> bool:
        """Nothing the render may have shown changed while it ran."""
        versions = self.versions
        data, epoch, tick, usage_any = before
        if versions.data != data:
            return False
        if not notes.usage:
            return True
        if versions.usage_epoch != epoch:
            return False
        loaded = notes.customers
        if not loaded:
            return versions.usage_any == usage_any
        return all(versions.usage_stamp(c) <= tick for c in loaded)

    def _keep(self, key: tuple[Any, ...], page: _Page) -> None:
        if len(self.pages) >= _MAX_PAGES:
            now = time.monotonic()
            for old in [k for k, p in self.pages.items() if p.expires < now]:
                del self.pages[old]
            if len(self.pages) >= _MAX_PAGES:
                self.pages.clear()
        self.pages[key] = page


def _answer(messages: list[Message]) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
    """Headers and body of a complete `200` HTML answer that sets no cookie, else None."""
    if not messages or messages[0]["type"] != "http.response.start":
        return None
    start = messages[0]
    if start["status"] != 200:
        return None
    headers = [(bytes(name), bytes(value)) for name, value in start.get("headers", ())]
    html = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"set-cookie":
            return None
        if lowered == b"content-type":
            html = value.startswith(b"text/html")
    if not html:
        return None
    chunks = []
    for message in messages[1:]:
        if message["type"] != "http.response.body":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            body = b"".join(chunks)
            return (headers, body) if len(body) <= _MAX_BODY else None
    return None


def _auth_at(session: bytes) -> int | None:
    try:
        data = msgspec.json.decode(session)
    except msgspec.DecodeError:
        return None
    auth_at = data.get("auth_at") if isinstance(data, dict) else None
    return auth_at if isinstance(auth_at, int) else None


def _cut(body: bytes, tokens: list[str]) -> list[bytes]:
    if not tokens:
        return [body]
    pattern = b"(" + b"|".join(re.escape(t.encode()) for t in tokens) + b")"
    return re.split(pattern, body)


async def _replay(page: _Page, send: Send) -> None:
    parts = page.parts
    if len(parts) == 1:
        body = parts[0]
    else:
        fresh = {token: new_token() for token in set(parts[1::2])}
        body = b"".join(part if i % 2 == 0 else fresh[part] for i, part in enumerate(parts))
    await send({"type": "http.response.start", "status": 200, "headers": page.headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


__all__ = [
    "ADMIN_PATHS",
    "CACHED_PATHS",
    "PAGE_CACHE_SECONDS",
    "PageCache",
    "figures_while",
    "is_cached_path",
    "shows_no_usage",
]
