"""The customer pages' cache (app/billing/page_cache.py): a page loaded again with nothing
changed runs no statement, and never shows what a write changed, nor another session's page,
nor hides a pending flash message."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import Engine, event, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User, UserSession
from app.apikeys.service import KEY_CACHE
from app.billing.page_cache import CACHED_PATHS, PAGE_CACHE_SECONDS
from app.db.page_versions import VERSIONS
from app.lib.clock import utcnow
from tests.integration.billing.conftest import (
    Member,
    add_card,
    add_invoice,
    block_of,
    grant,
    record,
    set_subscription,
)

PAGES = sorted(CACHED_PATHS - {"/billing/"})
_ATTEMPT = re.compile(r'name="attempt" value="([0-9a-f]{16})"')


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every statement any engine of this process runs meanwhile, but the usage writer's WAL
    checkpoint, which runs in a thread of its own at any time after writes (and its BEGIN, also
    when the window ends between the two: a connection whose only statement is BEGIN ran
    nothing in it; a request's BEGIN comes with its first statement)."""
    seen: list[str] = []
    ran: list[tuple[Any, str]] = []

    def note(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        ran.append((conn, statement))

    event.listen(Engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", note)
        checkpointing = {id(conn) for conn, statement in ran if "wal_checkpoint" in statement}
        by_connection: dict[int, list[str]] = {}
        for conn, statement in ran:
            by_connection.setdefault(id(conn), []).append(statement)
        checkpointing |= {key for key, run in by_connection.items() if run == ["BEGIN"]}
        seen.extend(statement for conn, statement in ran if id(conn) not in checkpointing)


async def load(member: Member, path: str = "/billing") -> str:
    response = await member.client.get(path)
    assert response.status_code == 200, (path, response.text[:500])
    return response.text


async def cached(member: Member, path: str = "/billing") -> str:
    """`path` loaded until it comes from the cache (a render during which something was
    written, such as the login's `last_seen_at`, is not kept)."""
    await load(member, path)
    await load(member, path)
    with statements() as ran:
        html = await load(member, path)
    assert ran == [], (path, ran)
    return html


def ai_requests(html: str) -> str:
    return block_of(html, "meter-ai_requests")


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_loaded_again_runs_no_statement(member: Member, path: str) -> None:
    first = await load(member, path)
    await load(member, path)
    with statements() as ran:
        again = await load(member, path)
    assert ran == []
    assert _ATTEMPT.sub("", again) == _ATTEMPT.sub("", first)


async def test_a_cached_page_draws_new_attempt_ids(member: Member) -> None:
    """A form's `attempt` id keys its Stripe action's idempotency: never the same twice."""
    await cached(member, "/billing/credits")
    seen = [_ATTEMPT.findall(await load(member, "/billing/credits")) for _ in range(3)]
    assert all(seen), "the credits page has attempt fields"
    flat = [attempt for ids in seen for attempt in ids]
    assert len(set(flat)) == len(flat)


async def test_usage_shows_at_once(member: Member, api: AsyncTestClient[Litestar]) -> None:
    assert "<strong>0</strong> / 20" in ai_requests(await cached(member))
    await record(api, member.external_id, count=3)
    assert "<strong>3</strong> / 20" in ai_requests(await load(member))
    assert "<strong>3</strong> / 20" in ai_requests(await cached(member))


async def test_credits_granted_show_at_once(member: Member, api: AsyncTestClient[Litestar]) -> None:
    before = await cached(member, "/billing/credits")
    await grant(api, member.external_id, 777)
    after = await load(member, "/billing/credits")
    assert "777" in after and after != before


async def test_a_subscription_change_shows_at_once(member: Member, session: AsyncSession) -> None:
    assert "</strong> / 20" in ai_requests(await cached(member))
    await set_subscription(session, member.customer_id, plan_slug="pro")  # Core, unannounced
    assert "</strong> / 1,000" in ai_requests(await load(member))
    assert "Pro" in await load(member, "/billing/upgrade")


async def test_an_invoice_shows_at_once(member: Member, session: AsyncSession) -> None:
    assert "INV-" not in await cached(member, "/billing/invoices")
    assert "$29.00</span>" not in await cached(member)
    await add_invoice(session, member.customer_id, 1)
    assert f"INV-{member.customer_id}-0001" in await load(member, "/billing/invoices")
    assert "$29.00</span>" in await load(member)


async def test_a_card_shows_at_once(member: Member, session: AsyncSession) -> None:
    assert "4242" not in await cached(member, "/billing/payment-methods")
    await add_card(session, member.customer_id, "4242", default=True)
    assert "4242" in await load(member, "/billing/payment-methods")


async def test_a_settings_change_shows_at_once_with_its_flash(member: Member) -> None:
    before = await cached(member, "/billing/settings")
    assert re.search(r'name="usage_emails"[^>]*checked', before)
    response = await member.client.post(
        "/billing/settings", data={"_csrf_token": await member.csrf()}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    after = await load(member, "/billing/settings")
    assert not re.search(r'name="usage_emails"[^>]*checked', after)
    assert "Usage emails are off" in after
    assert "Usage emails are off" not in await load(member, "/billing/settings")


async def test_the_users_own_row_and_any_other_write_show_at_once(
    member: Member, session: AsyncSession
) -> None:
    await cached(member)
    renamed = f"renamed-{member.email}"
    await session.execute(update(User).where(User.email == member.email).values(email=renamed))
    await session.commit()
    assert renamed in await load(member)
    # A write to any table, by raw SQL: the page is rendered again (a membership, a login,
    # anything a page may show).
    await cached(member)
    await session.execute(text("UPDATE customers SET name = name WHERE id = :id"), {"id": 0})
    await session.commit()
    with statements() as ran:
        await load(member)
    assert ran, "rendered anew after a write"


async def test_a_write_another_process_announces_shows_at_once(
    member: Member, app: Litestar
) -> None:
    """What the change watch hears from another process (here: a line in the changes file,
    as another process appends it; on PostgreSQL a NOTIFY) ends the cached pages."""
    await cached(member)
    data, usage = VERSIONS.data, VERSIONS.usage_stamp(member.external_id)
    changes = app.state["changes"]
    changes._heard(json.dumps(["pages", None]))
    assert VERSIONS.data == data + 1
    with statements() as ran:
        await load(member)
    assert ran
    await cached(member)
    changes._heard(json.dumps(["balances:many", [member.external_id], "elsewhere"]))
    assert VERSIONS.usage_stamp(member.external_id) > usage
    with statements() as ran:
        await load(member)
    assert ran


async def test_one_sessions_page_is_never_anothers(member: Member, other_member: Member) -> None:
    mine = await cached(member)
    theirs = await load(other_member)
    assert member.email in mine and member.email not in theirs
    assert other_member.email in theirs
    assert other_member.email in await cached(other_member)
    assert member.email in await load(member)


async def test_a_pending_flash_is_shown_not_the_cached_page(member: Member, app: Litestar) -> None:
    await cached(member)
    store = app.stores.get("sessions")
    session_id = member.client.cookies.get("session")
    assert session_id, member.client.cookies
    stored = json.loads((await store.get(session_id)) or b"{}")
    stored["_messages"] = [{"message": "Flash from elsewhere", "category": "info"}]
    await store.set(session_id, json.dumps(stored).encode())
    with statements() as ran:
        shown = await load(member)
    assert ran and "Flash from elsewhere" in shown
    assert "Flash from elsewhere" not in await load(member)


async def test_a_logged_out_session_gets_no_cached_page(member: Member) -> None:
    await cached(member)
    cookie = "; ".join(f"{name}={value}" for name, value in member.client.cookies.items())
    response = await member.client.post(
        "/logout", data={"_csrf_token": await member.csrf()}, follow_redirects=False
    )
    assert response.status_code in (302, 303), response.text
    again = await member.client.get("/billing", headers={"Cookie": cookie})
    assert member.email not in again.text and 'data-testid="logout"' not in again.text


async def test_boosted_links_are_cached_fragments_are_not(member: Member) -> None:
    boosted = {"HX-Request": "true", "HX-Boosted": "true"}
    for origin in ("/billing", "/billing/credits", "/billing/invoices"):
        headers = {**boosted, "HX-Current-URL": f"http://testserver.local{origin}"}
        response = await member.client.get("/billing/upgrade", headers=headers)
        assert response.status_code == 200 and "<html" in response.text
    with statements() as ran:
        await member.client.get("/billing/upgrade", headers=boosted)
    assert ran == []
    for _ in range(2):
        with statements() as ran:
            fragment = await member.client.get(
                "/billing/upgrade?interval=year", headers={"HX-Request": "true"}
            )
        assert "<html" not in fragment.text and ran


async def test_a_login_revoked_elsewhere_gets_no_cached_page(
    member: Member, session: AsyncSession
) -> None:
    """ "Log out other sessions" marks the login's row: a database write, so the next load
    runs `retrieve_user` again, which refuses it."""
    await cached(member)
    user_id = await session.scalar(select(User.id).where(User.email == member.email))
    await session.execute(
        update(UserSession).where(UserSession.user_id == user_id).values(revoked_at=utcnow())
    )
    await session.commit()
    again = await member.client.get("/billing")
    assert member.email not in again.text and 'data-testid="logout"' not in again.text


async def test_another_customers_usage_leaves_the_page_cached(
    member: Member, other_member: Member, api: AsyncTestClient[Litestar]
) -> None:
    await cached(member)
    # The key's first use in a minute writes its last-used time: not something a page shows
    # (it once ended every cached page, whenever a test's key id had not been used lately).
    KEY_CACHE._entries.clear()
    KEY_CACHE._last_touch.clear()
    await record(api, other_member.external_id, count=2)
    with statements() as ran:
        await load(member)
    assert ran == []
    assert "<strong>2</strong> / 20" in ai_requests(await load(other_member))


async def test_a_page_is_rendered_again_after_its_seconds(
    member: Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages show days left and expired cards, which change with time and no write."""
    await cached(member)
    later = utcnow() + timedelta(seconds=PAGE_CACHE_SECONDS + 1)
    monkeypatch.setattr("app.billing.page_cache.utcnow", lambda: later)
    with statements() as ran:
        await load(member)
    assert ran


async def test_the_authorization_header_is_part_of_the_key(member: Member) -> None:
    """No page reads it (pages go by the session), so it only keys the page apart."""
    for _ in range(3):
        await member.client.get("/billing", headers={"Authorization": "Bearer one"})
    with statements() as ran:
        same = await member.client.get("/billing", headers={"Authorization": "Bearer one"})
    assert ran == [] and member.email in same.text
    with statements() as ran:
        await member.client.get("/billing", headers={"Authorization": "Bearer two"})
    assert ran
