"""`make bench`'s page scenarios (issue 18, items 1 and 2): a logged-in customer's pages.

The demo customer is seeded in the bench's database, logged in through the login form (as a
browser would: its session cookie and CSRF cookie), then wrk sends those cookies with every
request: the live-usage poll while nothing changed (`HX-Request`, the version the dashboard
showed: answered 204), then each customer page (`CUSTOMER_PAGES`: the dashboard, plans,
credits, invoices, payment methods, settings), each printed with issue 18's target and
whether it was met.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from tests.servers import LiveServer

EMAIL, PASSWORD = "demo@example.com", "demo-password"  # app/demo.py's first user
_CSRF_INPUT = re.compile(r'name="_csrf_token" value="([^"]+)"')
_VERSION = re.compile(r'data-version="([^"]+)"')

# Issue 18's customer pages: the dashboard, then every other page at least as fast.
CUSTOMER_PAGES = (
    ("/billing", "d"),
    ("/billing/upgrade", "u"),
    ("/billing/credits", "c"),
    ("/billing/invoices", "i"),
    ("/billing/payment-methods", "m"),
    ("/billing/settings", "s"),
)

# wrk sends these headers with every request; `%%` because the bench formats scripts with `%`.
_LUA_HEADERS = """
local prefix = "%(prefix)s"
wrk.headers["Cookie"] = "{cookie}"
{extra}
"""


def log_in(server: LiveServer) -> str:
    """Seed the demo users, log the first one in; the Cookie header a browser would send."""
    server.cli("seed-demo")
    with httpx.Client(base_url=server.url, follow_redirects=False) as client:
        form = client.get("/login")
        token = _CSRF_INPUT.search(form.text)
        assert token, form.text
        answer = client.post(
            "/login", data={"email": EMAIL, "password": PASSWORD, "_csrf_token": token.group(1)}
        )
        assert answer.status_code == 303, answer.text
        cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
        dashboard = client.get("/billing")
        assert dashboard.status_code == 200, dashboard.text
    return cookies


def _script(cookie: str, htmx: bool = False) -> str:
    extra = 'wrk.headers["HX-Request"] = "true"' if htmx else ""
    return _LUA_HEADERS.format(cookie=cookie.replace("%", "%%"), extra=extra)


def page_scenarios(
    server: LiveServer, measure: Callable[[str, str | None, str], tuple[Any, ...]]
) -> list[tuple[str, tuple[Any, ...], dict[str, float]]]:
    """(name, measure()'s figures, targets) for each page scenario."""
    cookie = log_in(server)
    found = _VERSION.search(httpx.get(f"{server.url}/billing", headers={"Cookie": cookie}).text)
    assert found, "the dashboard shows no meters version"
    poll = f"/billing/meters?v={found.group(1)}"
    unchanged = httpx.get(
        server.url + poll, headers={"Cookie": cookie, "HX-Request": "true"}
    ).status_code
    assert unchanged == 204, f"the unchanged poll answered {unchanged}"
    page = {"min_vs_ceiling": 0.1, "max_p99_ms": 50}
    return [
        (
            "poll, unchanged (204)",
            measure(poll, _script(cookie, htmx=True), "p"),
            {"min_vs_ceiling": 0.5, "max_p99_ms": 25},
        ),
        *[
            (f"page: GET {path}", measure(path, _script(cookie), prefix), page)
            for path, prefix in CUSTOMER_PAGES
        ],
    ]
