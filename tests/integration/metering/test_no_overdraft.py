"""No overdraft under concurrency: accepted usage never exceeds included quota + credits.

Runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set. Several writers with their
own engines stand in for several app processes (each process has its own writer).
"""

from __future__ import annotations

import asyncio

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.catalog.models import Catalog
from app.db.engine import create_engine
from app.metering.models import CreditLedgerEntry, UsageEvent
from app.metering.ops import CustomerRef, RecordUsage, Reserve, fingerprint
from app.metering.writer import UsageWriter
from tests.integration.metering.conftest import balance, create_customer, event

# The free plan includes 20 ai_requests a day; 80 credits make 100 available.
INCLUDED = 20
CREDITS = 80
AVAILABLE = INCLUDED + CREDITS


async def _fund(api: AsyncTestClient[Litestar]) -> None:
    await create_customer(api, "cus_1")
    response = await api.post(
        "/api/v1/customers/cus_1/credits",
        json={"code": "ai_requests", "amount": CREDITS, "transaction_id": "fund", "reason": "test"},
    )
    assert response.status_code == 200


async def test_200_concurrent_requests_against_100_available(api):
    await _fund(api)
    responses = await asyncio.gather(
        *(api.post("/api/v1/events", json=event(f"c{i}")) for i in range(200))
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == AVAILABLE
    assert statuses.count(402) == 200 - AVAILABLE
    b = await balance(api, "ai_requests")
    assert b["used"] == AVAILABLE and b["available"] == 0 and b["credits"] == 0
    assert b["credits_used"] == CREDITS


async def test_reservations_and_events_mixed_never_overdraw(api):
    await _fund(api)

    async def reserve(i: int):
        return await api.post(
            "/api/v1/reservations",
            json={
                "reservation": {
                    "external_customer_id": "cus_1",
                    "code": "ai_requests",
                    "amount": 3,
                    "transaction_id": f"r{i}",
                }
            },
        )

    calls = [api.post("/api/v1/events", json=event(f"e{i}")) for i in range(120)]
    calls += [reserve(i) for i in range(40)]
    responses = await asyncio.gather(*calls)
    accepted_events = sum(1 for r in responses[:120] if r.status_code == 200)
    held = [r.json()["reservation"] for r in responses[120:] if r.status_code == 201]
    assert all(r.status_code in (200, 201, 402) for r in responses)
    assert accepted_events + 3 * len(held) <= AVAILABLE
    # Commit every hold for 2 of its 3: all must go through (they were held).
    commits = await asyncio.gather(
        *(api.post(f"/api/v1/reservations/{r['id']}/commit", json={"amount": 2}) for r in held)
    )
    assert {c.status_code for c in commits} <= {200}
    b = await balance(api, "ai_requests")
    assert b["used"] == accepted_events + 2 * len(held)
    assert b["used"] <= AVAILABLE
    assert b["reserved"] == 0


async def test_several_writers_like_several_processes(
    api, database_url: str, catalog: Catalog, engine: AsyncEngine
):
    await _fund(api)
    engines = [create_engine(database_url) for _ in range(4)]
    writers = [UsageWriter(e, catalog, upgrade_url="http://x/billing/upgrade") for e in engines]
    ref = CustomerRef(external_customer_id="cus_1")

    async def one(i: int) -> bool:
        writer = writers[i % len(writers)]
        if i % 5 == 0:
            op = Reserve(ref, "ai_requests", 2, f"w-r{i}", 60, fingerprint({"r": i}))
        else:
            op = RecordUsage(ref, "ai_requests", f"w-e{i}", 1, None, {}, fingerprint({"e": i}))
        try:
            await writer.submit(op)
        except Exception as exc:
            assert getattr(exc, "status_code", None) == 402, exc
            return False
        return True

    try:
        outcomes = await asyncio.gather(*(one(i) for i in range(250)))
    finally:
        for writer in writers:
            await writer.close()
        for e in engines:
            await e.dispose()
    accepted_units = sum((2 if i % 5 == 0 else 1) for i, ok in enumerate(outcomes) if ok)
    assert accepted_units == AVAILABLE  # demand (300) exceeds supply: all of it is taken, no more
    b = await balance(api, "ai_requests")
    assert b["used"] + b["reserved"] == AVAILABLE
    async with engine.connect() as conn:
        events = await conn.scalar(select(func.count()).select_from(UsageEvent))
        ledger_sum = await conn.scalar(select(func.sum(CreditLedgerEntry.amount)))
    assert events == b["used"]
    assert ledger_sum == b["credits"]
