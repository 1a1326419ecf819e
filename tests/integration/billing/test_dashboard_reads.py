"""The dashboard's reads: the balances from the usage writer's cache only when read with the
subscription as the page reads it, and the recent invoices with their count in one statement."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.service import CustomerService
from app.metering.service import UsageApi
from tests.integration.billing.conftest import (
    Member,
    add_invoice,
    block_of,
    record,
    set_subscription,
)


async def dashboard(member: Member) -> str:
    response = await member.client.get("/billing")
    assert response.status_code == 200, response.text
    return response.text


def ai_requests(html: str) -> str:
    return block_of(html, "meter-ai_requests")


async def test_a_subscription_change_behind_the_cache_shows_at_once(
    member: Member, api: Any, session: AsyncSession
) -> None:
    """`set_subscription` updates through Core: no change is announced, so the cached sheet
    stays; the dashboard must still show the subscription it reads."""
    await set_subscription(session, member.customer_id, plan_slug="pro")
    await record(api, member.external_id, count=3)
    assert "<strong>3</strong> / 1,000" in ai_requests(await dashboard(member))
    await set_subscription(session, member.customer_id, status="paused")  # the free limits
    assert "</strong> / 20" in ai_requests(await dashboard(member))
    await set_subscription(session, member.customer_id, status="active", plan_slug="business")
    block = ai_requests(await dashboard(member))
    assert "Unlimited" in block and "<strong>3</strong> used" in block


async def test_a_second_dashboard_reads_the_cached_balances(
    member: Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []
    read = UsageApi.balances_for

    async def counted(self: UsageApi, *args: Any) -> Any:
        reads.append(args)
        return await read(self, *args)

    monkeypatch.setattr(UsageApi, "balances_for", counted)
    first = await dashboard(member)  # the login's page may have filled the cache already
    before = len(reads)
    second = await dashboard(member)
    assert len(reads) == before  # within the cache's second (the test runs far faster)
    assert ai_requests(first) == ai_requests(second)


async def test_recent_invoices_and_their_count_leave_drafts_out(
    member: Member, session: AsyncSession
) -> None:
    await add_invoice(session, member.customer_id, 90, status="draft")
    html = await dashboard(member)
    assert 'data-testid="invoices-empty"' in html and "All invoices" not in html
    for n in range(4):
        await add_invoice(session, member.customer_id, n)
    await add_invoice(session, member.customer_id, 91, status="draft", number="DRAFT-1")
    html = await dashboard(member)
    assert "All invoices (4)" in html and "DRAFT-1" not in html
    assert html.count("$29.00</span>") == 3


async def test_the_customer_is_read_with_the_user(
    member: Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`retrieve_user` reads the user's customer with the user; the pages look it up no more."""
    lookups = []
    current_for = CustomerService.current_for

    async def counted(self: CustomerService, user_id: int, org_id: int | None = None) -> Any:
        lookups.append(user_id)
        return await current_for(self, user_id, org_id)

    monkeypatch.setattr(CustomerService, "current_for", counted)
    html = await dashboard(member)
    assert "<strong>0</strong> / 20" in ai_requests(html)
    assert lookups == []
