"""Guests through the API (issue 20, item 1): a customer on the `guest` plan, its allowance that
never resets, and its conversion into a signed-up customer, exactly once and race-free."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.catalog.models import Catalog
from app.customers.models import Customer
from app.lib.clock import utcnow
from app.lib.errors import InsufficientBalance
from app.metering.models import CreditGrant, CreditLedgerEntry, UsageEvent
from app.metering.ops import CustomerRef, RecordUsage
from app.metering.writer import apply_batch
from tests.integration.metering.conftest import balance, create_customer, event

Client = AsyncTestClient[Litestar]


async def use(api: Client, customer: str, count: int, prefix: str = "tx") -> None:
    for i in range(count):
        response = await api.post("/api/v1/events", json=event(f"{prefix}_{i}", customer=customer))
        assert response.status_code == 200, response.text


async def convert(api: Client, guest: str, target: str) -> tuple[int, dict]:
    response = await api.post(f"/api/v1/customers/{guest}/convert", json={"external_id": target})
    return response.status_code, response.json()


async def test_a_guest_is_created_through_the_api_with_five_requests(api: Client) -> None:
    customer = await create_customer(api, "anon_1", plan="guest")
    assert customer["plan"] == "guest"
    assert customer["subscription"]["status"] == "active"
    ai = await balance(api, "ai_requests", "anon_1")
    assert (ai["limit"], ai["used"], ai["available"]) == (5, 0, 5)


async def test_the_guest_allowance_never_resets(
    api: Client, engine: AsyncEngine, catalog: Catalog
) -> None:
    await create_customer(api, "anon_1", plan="guest")
    await use(api, "anon_1", 5)
    refused = await api.post("/api/v1/events", json=event("tx_6", customer="anon_1"))
    assert refused.status_code == 402
    # Next day, next month, next year: the writer at those times still finds it used up.
    for days in (1, 31, 400):
        op = RecordUsage(
            CustomerRef("anon_1"), "ai_requests", f"later_{days}", 1, None, {}, f"fp_{days}"
        )
        later = utcnow() + timedelta(days=days)
        ((result, error),) = await apply_batch(engine, catalog, [op], "/upgrade", now=later)
        assert result is None and isinstance(error, InsufficientBalance), (days, result)
        assert error.extra["available"] == 0


async def test_convert_carries_usage_and_credits_once(api: Client, session: AsyncSession) -> None:
    await create_customer(api, "anon_1", plan="guest")
    await create_customer(api, "user_x")  # made at signup, on the free plan
    before = await balance(api, "ai_requests", "user_x")
    grant = await api.post(
        "/api/v1/customers/anon_1/credits",
        json={"code": "ai_requests", "amount": 4, "transaction_id": "promo_1"},
    )
    assert grant.status_code in (200, 201), grant.text
    await use(api, "anon_1", 3)

    status, body = await convert(api, "anon_1", "user_x")
    assert status == 200, body
    assert body["usage"] == {"ai_requests": 3}
    assert body["credits"] == {"ai_requests": 4}
    assert body["target_created"] is False
    assert body["customer"]["external_id"] == "user_x"

    after = await balance(api, "ai_requests", "user_x")
    assert after["used"] == before["used"] + 3
    assert after["credits"] == before["credits"] + 4
    assert after["available"] == before["available"] - 3 + 4

    # Exactly once: a second conversion (the same or another target) is a clear 409.
    status, again = await convert(api, "anon_1", "user_x")
    assert (status, again["error"]) == (409, "guest_converted")
    assert "user_x" in again["message"]
    status, other = await convert(api, "anon_1", "user_y")
    assert (status, other["error"]) == (409, "guest_converted")
    assert (await balance(api, "ai_requests", "user_x"))["used"] == after["used"]

    # The guest takes no more usage (not an alias): a clear 409 naming what happened.
    late = await api.post("/api/v1/events", json=event("tx_late", customer="anon_1"))
    assert (late.status_code, late.json()["error"]) == (409, "guest_converted")
    # A retry of an event recorded before the conversion still gets its first outcome.
    replay = await api.post("/api/v1/events", json=event("tx_0", customer="anon_1"))
    assert replay.status_code == 200, replay.text
    read = await api.get("/api/v1/customers/anon_1")
    assert read.json()["customer"]["subscription"]["status"] == "converted"
    # Nor can a plan change reopen it.
    reopened = await api.post(
        "/api/v1/customers", json={"customer": {"external_id": "anon_1", "plan": "free"}}
    )
    assert (reopened.status_code, reopened.json()["error"]) == (409, "guest_converted")
    same = await api.post(
        "/api/v1/customers", json={"customer": {"external_id": "anon_1", "plan": "guest"}}
    )
    assert same.status_code == 200
    # The credits left the guest through the ledger.
    transfers = await session.scalar(
        select(func.sum(CreditLedgerEntry.amount)).where(CreditLedgerEntry.kind == "transfer")
    )
    assert transfers == -4
    guest_left = await session.scalar(
        select(func.sum(CreditGrant.remaining)).where(CreditGrant.source != "guest")
    )
    assert guest_left == 0


async def test_convert_creates_a_missing_target_on_the_default_plan(api: Client) -> None:
    await create_customer(api, "anon_1", plan="guest")
    await use(api, "anon_1", 2)
    status, body = await convert(api, "anon_1", "user_new")
    assert status == 200, body
    assert body["target_created"] is True
    assert body["customer"]["plan"] == "free"
    assert (await balance(api, "ai_requests", "user_new"))["used"] == 2


async def test_convert_refuses_bad_pairs(api: Client) -> None:
    await create_customer(api, "anon_1", plan="guest")
    await create_customer(api, "anon_2", plan="guest")
    await create_customer(api, "user_x")
    assert (await convert(api, "nobody", "user_x"))[0] == 404
    status, body = await convert(api, "user_x", "user_z")
    assert (status, body["error"]) == (422, "not_a_guest")
    status, body = await convert(api, "anon_1", "anon_2")
    assert (status, body["error"]) == (422, "target_is_guest")
    status, body = await convert(api, "anon_1", "anon_1")
    assert status == 422
    status, body = await convert(api, "anon_1", "a/b")
    assert status == 422
    # Nothing of a refused conversion stayed: the guest still converts.
    assert (await convert(api, "anon_1", "user_x"))[0] == 200


async def test_concurrent_converts_one_wins_the_other_gets_409(
    api: Client, session: AsyncSession
) -> None:
    await create_customer(api, "anon_1", plan="guest")
    await create_customer(api, "user_x")
    await use(api, "anon_1", 3)
    results = await asyncio.gather(
        *(convert(api, "anon_1", target) for target in ("user_x", "user_x", "user_y", "user_z"))
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409, 409, 409], results
    assert {body["error"] for status, body in results if status == 409} == {"guest_converted"}
    winner = next(body for status, body in results if status == 200)
    target = winner["customer"]["external_id"]
    assert (await balance(api, "ai_requests", target))["used"] == 3
    others = {"user_x", "user_y", "user_z"} - {target}
    for other in others:
        response = await api.get(f"/api/v1/customers/{other}/balances")
        assert response.status_code == 404 or (
            next(b for b in response.json()["balances"] if b["code"] == "ai_requests")["used"] == 0
        )


async def test_convert_racing_ingest_loses_nothing_and_counts_nothing_twice(
    api: Client, session: AsyncSession
) -> None:
    async def send(guest: str, i: int) -> int:
        response = await api.post("/api/v1/events", json=event(f"race_{i}", customer=guest))
        return response.status_code

    # Several rounds, the conversion sent before, among and after the events.
    for round_, position in enumerate((0, 2, 4, 1, 3)):
        guest, target = f"anon_{round_}", f"user_{round_}"
        await create_customer(api, guest, plan="guest")
        await create_customer(api, target)
        tasks: list = [send(guest, i) for i in range(4)]
        tasks.insert(position, convert(api, guest, target))
        outcomes = await asyncio.gather(*tasks)
        status, body = outcomes.pop(position)
        assert status == 200, body
        codes = outcomes
        assert set(codes) <= {200, 409}, codes
        accepted = codes.count(200)
        stored = await session.scalar(
            select(func.count())
            .select_from(UsageEvent)
            .join(Customer, Customer.id == UsageEvent.customer_id)
            .where(Customer.external_id == guest)
        )
        # Every event stored on the guest before the conversion moved; a refused one was not
        # stored (a 409 `guest_converted`, to send again for the target).
        assert stored == accepted
        assert body["usage"].get("ai_requests", 0) == accepted
        assert (await balance(api, "ai_requests", target))["used"] == accepted
        await session.commit()  # a fresh snapshot for the next round
