"""PostgreSQL: plain usage batches are written without locks (batch_repository.read_slot), in one
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
from datetime import datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.catalog.models import Catalog
from app.db.engine import create_engine
from app.lib.clock import utcnow
from app.metering import batch_repository as batch_repo
from app.metering import repository as repo
from app.metering import rules
from app.metering.models import UsageEvent, UsageTotal
from app.metering.ops import CustomerRef, GrantCredits, RecordUsage, Reserve, fingerprint
from app.metering.writer import UsageWriter
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
        original = batch_repo.write_usage_unlocked

        def counted(*args: Any) -> None:
            try:
                original(*args)
            except batch_repo.WriteConflict:
                self.conflicts += 1
                raise
            self.written += 1

        monkeypatch.setattr(batch_repo, "write_usage_unlocked", counted)


async def test_several_writers_with_holds_never_overdraw(
    api: AsyncTestClient[Litestar],
    database_url: str,
    catalog: Catalog,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await create_customer(api, "cus_1")
    unlocked = Unlocked(monkeypatch)
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
        assert unlocked.written > 0


async def test_usage_of_an_unlimited_quota_is_added_without_conflicts(
    api: AsyncTestClient[Litestar],
    database_url: str,
    catalog: Catalog,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await create_customer(api, "cus_1", plan="business")  # ai_requests: unlimited
    unlocked = Unlocked(monkeypatch)
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
        assert unlocked.written > 0
        assert unlocked.conflicts == 0


def _slot(conn: Connection, catalog: Catalog, now: datetime) -> tuple[Any, ...]:
    plan = repo.customer_plan(conn, external_id="cus_1")
    assert plan is not None
    _quota, period = rules.slot_period(catalog, plan, "ai_requests", now)
    return batch_repo.read_slot(conn, plan.id, "ai_requests", period, now)


async def _read(engine: AsyncEngine, catalog: Catalog) -> Any:
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        total, _lots, _expired, _held = await autocommit.run_sync(_slot, catalog, utcnow())
        return total


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
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.run_sync(batch_repo.write_usage_unlocked, [], {}, [row], utcnow())


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
        first = await _read(engine, catalog)
        await _write_total(engine, first, first.used)  # the version read applies
        read = await _read(engine, catalog)
        assert read.version != first.version
        ops: dict[str, Any] = {
            "hold": Reserve(ref, "ai_requests", 2, "hold", 60, "h"),
            "grant": GrantCredits(ref, "ai_requests", 5, "api", "test", "grant", None, "g"),
            "usage": RecordUsage(ref, "ai_requests", "second", 1, None, {}, "s"),
        }
        await writer.submit(ops[between])
        used = 2 if between == "usage" else 1
        with pytest.raises(batch_repo.WriteConflict):
            await _write_total(engine, read, read.used + 5)
        assert await _used(engine, read.id) == used  # the failed write left nothing
        # Adding to the total (a batch that refused nothing): fails on lots and holds changed
        # since the read, not on other usage; and never beyond the ceiling.
        if between == "usage":
            with pytest.raises(batch_repo.WriteConflict):
                await _write_total(engine, read, 18, 19, add=True)  # 2 + 18 > 19
            await _write_total(engine, read, 17, 19, add=True)
            assert await _used(engine, read.id) == used + 17
        else:
            with pytest.raises(batch_repo.WriteConflict):
                await _write_total(engine, read, 1, None, add=True)
            assert await _used(engine, read.id) == used
    finally:
        await writer.close()
