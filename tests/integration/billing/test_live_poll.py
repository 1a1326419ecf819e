"""The unchanged live-usage poll is answered before the app (app/billing/live_poll.py), with
the full route's answer; anything it cannot prove unchanged goes to the route as before."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.types import Receive, Scope, Send

from app.billing.live_poll import LivePoll
from app.lib.clock import utcnow
from tests.integration.billing.conftest import HX, Member, record

_SKIP = {"date", "server", "content-length", "content-type"}


class Passed:
    """Counts the requests the live poll handed on to the app."""

    def __init__(self, poll: LivePoll) -> None:
        self.poll, self.inner, self.paths = poll, poll.app, list[str]()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await self.inner(scope, receive, send)


@pytest.fixture
def passed(app: Litestar) -> Iterator[Passed]:
    poll = app.asgi_handler
    assert isinstance(poll, LivePoll)
    counter = Passed(poll)
    poll.app = counter
    try:
        yield counter
    finally:
        poll.app = counter.inner


async def _version(member: Member) -> str:
    page = await member.client.get("/billing")
    found = re.search(r'data-version="(\w+)"', page.text)
    assert found, page.text
    return found.group(1)


def _headers(response: object) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in _SKIP}  # type: ignore[attr-defined]


async def test_unchanged_poll_is_answered_before_the_app_as_the_route_answers(
    member: Member, passed: Passed
) -> None:
    version = await _version(member)
    # An extra parameter the route ignores: the route's own 204, for comparison.
    routed = await member.client.get(f"/billing/meters?v={version}&t=1", headers=HX)
    assert routed.status_code == 204 and passed.paths == ["/billing", "/billing/meters"]

    fast = await member.client.get(f"/billing/meters?v={version}", headers=HX)
    assert fast.status_code == 204 and fast.text == ""
    assert passed.paths == ["/billing", "/billing/meters"]  # the app never saw it
    assert _headers(fast) == _headers(routed)
    assert "set-cookie" not in fast.headers


async def test_a_change_goes_to_the_route_at_the_next_poll(
    member: Member, api, passed: Passed
) -> None:
    version = await _version(member)
    assert (await member.client.get(f"/billing/meters?v={version}", headers=HX)).status_code == 204
    await record(api, member.external_id)
    changed = await member.client.get(f"/billing/meters?v={version}", headers=HX)
    assert changed.status_code == 200
    assert changed.headers["hx-trigger-after-settle"] == "meters-updated"
    assert "<strong>1</strong> / 20" in changed.text


async def test_without_a_valid_session_the_poll_is_the_routes(
    member: Member, app: Litestar, passed: Passed
) -> None:
    version = await _version(member)
    poll = f"/billing/meters?v={version}"
    session_id = member.client.cookies["session"]
    store = app.stores.get("sessions")

    # Logged in longer ago than a session may last: the route's login redirect, not a 204.
    stored = await store.get(session_id)
    assert stored is not None
    old = int((utcnow() - timedelta(seconds=app.state["settings"].session_max_age + 5)).timestamp())
    await store.set(session_id, re.sub(rb'"auth_at":\d+', f'"auth_at":{old}'.encode(), stored))
    expired = await member.client.get(poll, headers=HX, follow_redirects=False)
    assert expired.status_code in (303, 401) and passed.paths[-1] == "/billing/meters"

    # Logged out (the session deleted from the store, as another process's logout does).
    await store.delete(session_id)
    gone = await member.client.get(poll, headers=HX, follow_redirects=False)
    assert gone.status_code in (303, 401)


async def test_not_an_htmx_poll_goes_to_the_route(member: Member, passed: Passed) -> None:
    version = await _version(member)
    full = await member.client.get(f"/billing/meters?v={version}")
    assert full.status_code == 200 and "<html" in full.text
    boosted = await member.client.get(
        f"/billing/meters?v={version}", headers={**HX, "HX-Boosted": "true"}
    )
    assert boosted.status_code == 200 and "<html" in boosted.text
    assert passed.paths.count("/billing/meters") == 2
