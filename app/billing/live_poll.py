"""The dashboard's live-usage poll answered before Litestar when nothing changed.

Every open dashboard asks `GET /billing/meters?v=<version>` every 3 s (htmx, `HX-Request`);
almost always the answer is `204`: the meters still show what `v` says. Through Litestar that
answer cost a session load, the user's row, the customer's, the subscription's, the payments
awaiting action and a balance read, each an ORM query (about 4 ms of CPU under load).

`LivePoll` wraps the app's ASGI handler and answers such a poll itself when it can prove the
answer is `204`, with what the full route checks, from what is at hand:

- the session: read from the store on every poll (a logout anywhere ends it at once), its
  `user_id` and `auth_at` checked as `retrieve_user` checks them;
- the session's organization (its `org`, else the user's first, as `retrieve_user` picks
  it; usage is visible to every member): a per-process map from session id to its external
  id, read once per session and organization with one statement;
- the version: from the usage writer's per-process balance cache (`UsageApi.balances`, one
  read on a miss), which this process's writes empty at once and other processes' usage,
  plan changes and grants within milliseconds (`app/db/changes.py`), within a second when an
  announcement is lost; so a change shows on the next poll (3 s), in any process.

Anything else (no or an unknown session, no customer, another version, a request that is not
an htmx fragment poll, no CSRF cookie yet, an error) goes to the app as before, which answers
it exactly as it always did.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qsl

import msgspec
import structlog
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.stores.base import Store
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from app.accounts.auth import ORG_KEY
from app.billing.views import meters_version
from app.catalog.models import Catalog
from app.customers.repository import external_id_for_member
from app.db.engine import SyncWork
from app.lib.clock import utcnow
from app.metering.service import UsageApi
from app.web.responses import PAGE_HEADERS

PATH = "/billing/meters"
_MAX_SESSIONS = 100_000
_NOT_HERE = (b"hx-boosted", b"hx-history-restore-request")
log = structlog.get_logger()


class LivePoll:
    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: Store,
        session_cookie: str,
        csrf_cookie: str,
        session_max_age: int,
        usage: UsageApi,
        work: SyncWork,
        catalog: Catalog,
        headers: dict[str, str],
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.session_cookie = session_cookie
        self.csrf_cookie = csrf_cookie
        self.session_max_age = session_max_age
        self.usage = usage
        self.work = work
        self.catalog = catalog
        # The full route's 204: its own headers and every page's security headers.
        self.headers = [
            (name.lower().encode(), value.encode())
            for name, value in {**headers, **PAGE_HEADERS}.items()
        ]
        # session id -> (user id, the session's organization, the external id of the
        # organization shown): a session's user never changes (a login issues a new session
        # id); a switch of organization changes the session's `org`, so the key misses. A
        # member removed meanwhile keeps getting 204s (nothing but "unchanged") until the
        # session ends or this process forgets it; any other answer goes through the route,
        # which checks the membership.
        self.customers: dict[str, tuple[int, int | None, str]] = {}

    @classmethod
    def install(cls, app: Litestar, **kwargs: Any) -> LivePoll:
        """Put a `LivePoll` in front of `app`'s handler (after `Litestar(...)` built it)."""
        poll = cls(app.asgi_handler, **kwargs)
        app.asgi_handler = poll
        return poll

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == PATH and scope["type"] == ScopeType.HTTP and _method(scope) == "GET":
            try:
                unchanged = await self.unchanged(scope)
            except Exception as exc:  # the full route answers it, errors and all
                log.debug("live poll passed on", error=repr(exc))
                unchanged = False
            if unchanged:
                await send({"type": "http.response.start", "status": 204, "headers": self.headers})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
        await self.app(scope, receive, send)

    async def unchanged(self, scope: Scope) -> bool:
        """True when the full route would answer this request with its 204."""
        query = parse_qsl(scope["query_string"].decode("latin-1"))
        if len(query) != 1 or query[0][0] != "v" or not query[0][1]:
            return False
        htmx, cookie = False, None
        for name, value in scope["headers"]:
            if name == b"hx-request":
                htmx = value == b"true"
            elif name == b"cookie":
                if cookie is not None:
                    return False
                cookie = value.decode("latin-1")
            elif name in _NOT_HERE:
                return False
        if not htmx or cookie is None:
            return False
        cookies = _cookies(cookie)
        session_id = cookies.get(self.session_cookie)
        if not session_id or session_id == "null" or not cookies.get(self.csrf_cookie):
            return False
        external_id = await self._customer(session_id)
        if external_id is None:
            return False
        sheet = await self.usage.balances(external_id)
        plan = self.catalog.plan(sheet.plan_slug) or self.catalog.default_plan
        return query[0][1] == meters_version(plan.slug, sheet.balances, utcnow())

    async def _customer(self, session_id: str) -> str | None:
        """The external id of the logged-in user's customer, if the session is valid."""
        data = await self.sessions.get(session_id)
        if data is None:
            return None
        session = msgspec.json.decode(data)
        user_id, auth_at = session.get("user_id"), session.get("auth_at")
        if not isinstance(user_id, int) or not isinstance(auth_at, int):
            return None
        if utcnow().timestamp() - auth_at > self.session_max_age:
            return None
        # The session's current organization, as `retrieve_user` resolves it (its own if
        # the user still belongs to it, else their first): any member may see its usage.
        org_id = session.get(ORG_KEY)
        org_id = org_id if isinstance(org_id, int) else None
        known = self.customers.get(session_id)
        if known is not None and known[0] == user_id and known[1] == org_id:
            return known[2]
        external_id = await self.work.read(external_id_for_member, user_id, org_id)
        if external_id is None:
            return None
        if len(self.customers) >= _MAX_SESSIONS:
            self.customers.clear()
        self.customers[session_id] = (user_id, org_id, external_id)
        return external_id


def _method(scope: Scope) -> str:
    return cast("HTTPScope", scope)["method"]


def _cookies(header: str) -> dict[str, str]:
    cookies = {}
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            cookies[name.strip()] = value.strip()
    return cookies
