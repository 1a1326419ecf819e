"""PostgreSQL: plain usage batches are written without locks (app.metering.unlocked), in one
statement that applies only if each running total is still the row version read. Exact all
the same: a write of credits or holds between the read and the write makes it fail whole, and
the batch runs again with locks.

The race test runs on SQLite too (where every batch takes the write lock); the version checks
are PostgreSQL's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.catalog.models import Catalog
from app.db.engine import create_engine
from app.lib.clock import utcnow
from app.metering import unlocked
from app.metering.models import UsageEvent, UsageTotal
from app.metering.ops import CustomerRef, GrantCredits, RecordUsage, Reserve, fingerprint
from app.metering.writer import UsageWriter, apply_batch
from tests.integration.metering.conftest import balance, create_customer

INCLUDED = 20  # the free plan's ai_requests a day


@asynccontextmanager
async def writers_like_processes(
    database_url: str, catalog: Catalog, count: int
) -> AsyncIterator[list[UsageWriter]]:
    """Writers with engines of their own, as several app processes have."""
    engines = [create_engine(database_url) for _ in range(count)]
    writers = [UsageWriter(e, catalog, upgrade_url="http://x/billing/upgrade") for e in engines]
    try:
        yield writers
    finally:
        for writer in writers:
            await writer.close()
        for e in engines:
            await e.dispose()


class Unlocked:
    """Counts the batches written without locks, and those that met another write."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.written = 0
        self.conflicts = 0
        original = unlocked.write_usage

        async def counted(*args: Any) -> None:
            try:
                await original(*args)
            except unlocked.WriteConflict:
                self.conflicts += 1
                raise
            self.written += 1

        monkeypatch.setattr(unlocked, "write_usage", counted)


async def test_several_writers_with_holds_never_overdraw(
    api: AsyncTestClient[Litestar],
    database_url: str,
    catalog: Catalog,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await create_customer(api, "cus_1")
    writes = Unlocked(monkeypatch)
    ref = CustomerRef(external_customer_id="cus_1")

    async def one(writers: list[UsageWriter], i: int) -> int:
        if i % 7 == 0:  # holds taken by another writer, between the unlocked reads and writes
            writer = writers[0]
            op: Any = Reserve(ref, "ai_requests", 2, f"r{i}", 60, fingerprint({"r": i}))
            units = 2
        else:
            writer = writers[1 + i % (len(writers) - 1)]
            op = RecordUsage(ref, "ai_requests", f"e{i}", 1, None, {}, fingerprint({"e": i}))
            units = 1
        for _ in range(i % 3):
            await asyncio.sleep(0)  # arrivals spread over several batches of each writer
        try:
            await writer.submit(op)
        except Exception as exc:
            assert getattr(exc, "status_code", None) == 402, exc
            return 0
        return units

    async with writers_like_processes(database_url, catalog, 4) as writers:
        # The running total exists (a batch that creates it takes the locked way).
        await writers[1].submit(RecordUsage(ref, "ai_requests", "first", 1, None, {}, "f"))
        accepted = [1, *await asyncio.gather(*(one(writers, i) for i in range(120)))]
    assert sum(accepted) == INCLUDED  # demand exceeds the quota: all of it taken, no more
    b = await balance(api, "ai_requests")
    assert b["used"] + b["reserved"] == INCLUDED
    async with engine.connect() as conn:
        events = await conn.scalar(select(func.count()).select_from(UsageEvent))
    assert events == b["used"]
    if engine.dialect.name == "postgresql":
        assert writes.written > 0


async def test_usage_of_an_unlimited_quota_is_added_without_conflicts(
    api: AsyncTestClient[Litestar],
    database_url: str,
    catalog: Catalog,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await create_customer(api, "cus_1", plan="business")  # ai_requests: unlimited
    writes = Unlocked(monkeypatch)
    ref = CustomerRef(external_customer_id="cus_1")

    async def one(writers: list[UsageWriter], i: int) -> None:
        for _ in range(i % 4):
            await asyncio.sleep(0)
        op = RecordUsage(ref, "ai_requests", f"e{i}", 2, None, {}, fingerprint({"e": i}))
        await writers[i % len(writers)].submit(op)

    async with writers_like_processes(database_url, catalog, 3) as writers:
        await writers[0].submit(RecordUsage(ref, "ai_requests", "first", 2, None, {}, "f"))
        await asyncio.gather(*(one(writers, i) for i in range(150)))
    assert (await balance(api, "ai_requests"))["used"] == 2 * 151
    if engine.dialect.name == "postgresql":
        assert writes.written > 0
        assert writes.conflicts == 0


_TOTAL = text(
    "SELECT t.id, t.used, t.credits_used, t.xmin::text AS version, t.lots_holds_version "
    "FROM usage_totals t JOIN customers c ON c.id = t.customer_id "
    "WHERE c.external_id = 'cus_1' AND t.meter_code = 'ai_requests'"
)


async def _read(engine: AsyncEngine) -> Any:
    """The running total as a batch reads it, with its row version."""
    async with engine.connect() as conn:
        return (await conn.execute(_TOTAL)).one()


async def _write_total(
    engine: AsyncEngine, total: Any, used: int, ceiling: int | None = None, *, add: bool = False
) -> None:
    """Set the total (only if still the row version read), or `add` to it (only if the lots
    and holds are as read, and within the ceiling)."""
    row = (
        (total.id, used, ceiling, None, total.lots_holds_version)
        if add
        else (total.id, used, total.credits_used, total.version, total.lots_holds_version)
    )
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        await unlocked.write_usage(driver, [], {}, [row], utcnow())


async def _used(engine: AsyncEngine, total_id: int) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(UsageTotal.used).where(UsageTotal.id == total_id)))


@pytest.mark.parametrize("between", ["hold", "grant", "usage"])
async def test_a_write_between_the_read_and_the_write_fails_it_whole(
    api: AsyncTestClient[Litestar],
    catalog: Catalog,
    engine: AsyncEngine,
    between: str,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("batches are written without locks on PostgreSQL only")
    await create_customer(api, "cus_1")
    writer = UsageWriter(engine, catalog, upgrade_url="http://x/billing/upgrade")
    ref = CustomerRef(external_customer_id="cus_1")
    try:
        await writer.submit(RecordUsage(ref, "ai_requests", "first", 1, None, {}, "f"))
        first = await _read(engine)
        await _write_total(engine, first, first.used)  # the version read applies
        read = await _read(engine)
        assert read.version != first.version
        ops: dict[str, Any] = {
            "hold": Reserve(ref, "ai_requests", 2, "hold", 60, "h"),
            "grant": GrantCredits(ref, "ai_requests", 5, "api", "test", "grant", None, "g"),
            "usage": RecordUsage(ref, "ai_requests", "second", 1, None, {}, "s"),
        }
        await writer.submit(ops[between])
        used = 2 if between == "usage" else 1
        with pytest.raises(unlocked.WriteConflict):
            await _write_total(engine, read, read.used + 5)
        assert await _used(engine, read.id) == used  # the failed write left nothing
        # Adding to the total (a batch that refused nothing): fails on lots and holds changed
        # since the read, not on other usage; and never beyond the ceiling.
        if between == "usage":
            with pytest.raises(unlocked.WriteConflict):
                await _write_total(engine, read, 18, 19, add=True)  # 2 + 18 > 19
            await _write_total(engine, read, 17, 19, add=True)
            assert await _used(engine, read.id) == used + 17
        else:
            with pytest.raises(unlocked.WriteConflict):
                await _write_total(engine, read, 1, None, add=True)
            assert await _used(engine, read.id) == used
    finally:
        await writer.close()


def _postgresql_only(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("batches are written without locks on PostgreSQL only")


async def test_a_new_period_without_its_total_yet_takes_the_locked_way(
    api: AsyncTestClient[Litestar],
    catalog: Catalog,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The read finds a slot's latest total: yesterday's, on a meter that resets daily, until
    today's is created (with locks). Usage never lands in the period before."""
    _postgresql_only(engine)
    await create_customer(api, "cus_1")
    writes = Unlocked(monkeypatch)
    ref = CustomerRef(external_customer_id="cus_1")
    yesterday = utcnow() - timedelta(days=1)
    writer = UsageWriter(engine, catalog, upgrade_url="http://x/billing/upgrade")
    try:
        for i, now in enumerate([yesterday, yesterday, utcnow(), utcnow()]):
            writer.clock = lambda now=now: now
            await writer.submit(RecordUsage(ref, "ai_requests", f"e{i}", 1, None, {}, f"f{i}"))
    finally:
        await writer.close()
    async with engine.connect() as conn:
        totals = (
            await conn.execute(select(UsageTotal.used).order_by(UsageTotal.period_start))
        ).scalars()
        assert list(totals) == [2, 2]
    assert writes.written == 2  # each period's second event; its first created the total


async def test_a_batch_by_customer_and_by_subscription_is_written_without_locks(
    api: AsyncTestClient[Litestar],
    catalog: Catalog,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _postgresql_only(engine)
    await create_customer(api, "cus_1")
    await create_customer(api, "user_2")  # its subscription's external_id is "user_2"
    by_customer = CustomerRef(external_customer_id="cus_1")
    by_subscription = CustomerRef(external_subscription_id="user_2")
    meters = ("ai_requests", "api_calls")
    first = [
        RecordUsage(ref, meter, f"first-{meter}", 1, None, {}, "f")
        for ref in (by_customer, by_subscription)
        for meter in meters
    ]
    batch = [
        RecordUsage(ref, meter, f"e{i}-{meter}", 2, None, {}, f"f{i}")
        for i, ref in enumerate([by_subscription, by_customer, by_subscription])
        for meter in meters
    ]
    writes = Unlocked(monkeypatch)
    for ops in (first, batch):
        outcomes = await apply_batch(engine, catalog, ops, "http://x/billing/upgrade")
        assert [error for _, error in outcomes] == [None] * len(ops)
    assert writes.written == 1  # the first batch created the totals (with locks)
    for customer, used in (("cus_1", 1 + 2), ("user_2", 1 + 2 * 2)):
        for meter in meters:
            assert (await balance(api, meter, customer))["used"] == used


async def test_a_lost_connection_fails_no_usage(
    api: AsyncTestClient[Litestar],
    catalog: Catalog,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer keeps a connection for batches written without locks: when the database
    drops it (a restart, a failover), the next batch is written all the same, and later ones
    without locks again, on a new connection."""
    _postgresql_only(engine)
    await create_customer(api, "cus_1", plan="business")
    writes = Unlocked(monkeypatch)
    ref = CustomerRef(external_customer_id="cus_1")
    writer = UsageWriter(engine, catalog, upgrade_url="http://x/billing/upgrade")
    try:
        for i in range(2):
            await writer.submit(RecordUsage(ref, "ai_requests", f"a{i}", 1, None, {}, "f"))
        assert writes.written == 1
        async with engine.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        for i in range(3):
            await writer.submit(RecordUsage(ref, "ai_requests", f"b{i}", 1, None, {}, "f"))
    finally:
        await writer.close()
    assert (await balance(api, "ai_requests"))["used"] == 5
    assert writes.written >= 2  # without locks again after the lost connection


async def test_a_connection_the_driver_lost_track_of_fails_no_usage(
    api: AsyncTestClient[Litestar],
    catalog: Catalog,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the server drops the kept connection while a statement is being sent, asyncpg
    may raise its own InternalClientError ("cannot switch to state 12; another operation (2)
    is in progress"), neither a server error nor an interface error: the batch takes the
    locked way all the same, never a 500."""
    _postgresql_only(engine)
    await create_customer(api, "cus_1", plan="business")
    ref = CustomerRef(external_customer_id="cus_1")
    load = unlocked._load
    failures = [asyncpg.InternalClientError("cannot switch to state 12")]

    async def confused(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return await load(*args)

    writer = UsageWriter(engine, catalog, upgrade_url="http://x/billing/upgrade")
    try:
        await writer.submit(RecordUsage(ref, "ai_requests", "a", 1, None, {}, "f"))
        monkeypatch.setattr(unlocked, "_load", confused)
        for i in range(2):
            await writer.submit(RecordUsage(ref, "ai_requests", f"b{i}", 1, None, {}, "f"))
    finally:
        await writer.close()
    assert not failures
    assert (await balance(api, "ai_requests"))["used"] == 3
