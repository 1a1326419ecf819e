"""The writer's queue: what arrives while a transaction is being gathered shares it.

Each transaction reads the writer's clock once, so the events it wrote share their
`created_at`: that is how these tests tell the transactions apart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.catalog.models import Catalog
from app.customers.service import CustomerInput, CustomerService
from app.lib.clock import utcnow
from app.metering.arrivals import ARRIVALS
from app.metering.ops import CustomerRef, EventResult, RecordUsage
from app.metering.writer import UsageWriter


def _op(n: int) -> RecordUsage:
    return RecordUsage(CustomerRef("c"), "api_calls", f"t{n}", 1, None, {}, f"f{n}")


class _Clock:
    """A new instant at every call: one call per transaction."""

    def __init__(self) -> None:
        self.start = utcnow()
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return self.start + timedelta(milliseconds=self.calls)


class Recorder:
    """The results the tests received, grouped into the transactions that wrote them."""

    def __init__(self) -> None:
        self.results: list[EventResult] = []

    def ok(self, result: Any) -> str:
        assert isinstance(result, EventResult) and not result.replayed, result
        self.results.append(result)
        return f"ok-{result.transaction_id}"

    @property
    def transactions(self) -> list[list[str]]:
        groups: dict[datetime, list[str]] = {}
        for result in sorted(self.results, key=lambda r: r.created_at):
            groups.setdefault(result.created_at, []).append(result.transaction_id)
        return [sorted(group, key=lambda tx: int(tx[1:])) for group in groups.values()]


@pytest.fixture
async def writer(
    engine: AsyncEngine, session: AsyncSession, catalog: Catalog
) -> AsyncIterator[UsageWriter]:
    await CustomerService(session, catalog).upsert(CustomerInput(external_id="c"))
    await session.commit()
    usage_writer = UsageWriter(engine, catalog, upgrade_url="/upgrade", clock=_Clock())
    yield usage_writer
    await usage_writer.close()


@pytest.fixture
def seen() -> Recorder:
    return Recorder()


async def test_requests_arriving_a_few_loop_turns_apart_share_one_transaction(
    writer: UsageWriter, seen: Recorder
) -> None:
    async def late(n: int, turns: int) -> Any:
        for _ in range(turns):
            await asyncio.sleep(0)  # ok: a request still parsing its body, not a timed wait
        return seen.ok(await writer.submit(_op(n)))

    results = await asyncio.gather(late(1, 0), late(2, 1), late(3, 2))

    assert results == ["ok-t1", "ok-t2", "ok-t3"]
    assert seen.transactions == [["t1", "t2", "t3"]]


async def test_a_lone_request_is_not_held_back(writer: UsageWriter, seen: Recorder) -> None:
    assert seen.ok(await writer.submit(_op(1))) == "ok-t1"
    assert seen.ok(await writer.submit(_op(2))) == "ok-t2"
    assert seen.transactions == [["t1"], ["t2"]]


async def test_a_batch_request_gets_each_outcome_in_order(
    writer: UsageWriter, seen: Recorder
) -> None:
    outcomes = await writer.submit_many([_op(1), _op(2), _op(3)])
    assert [seen.ok(o) for o in outcomes] == ["ok-t1", "ok-t2", "ok-t3"]
    assert seen.transactions == [["t1", "t2", "t3"]]


async def test_the_writer_waits_for_usage_requests_known_to_be_on_their_way(
    writer: UsageWriter, seen: Recorder
) -> None:
    """A request counted by `ARRIVALS` joins the transaction even if it needs many more loop
    turns than the writer would otherwise wait (its body still arriving, say)."""

    async def counted(n: int, turns: int) -> Any:
        ticket = ARRIVALS.expect()
        try:
            for _ in range(turns):
                await asyncio.sleep(0)  # ok: a request still on its way, not a timed wait
            return seen.ok(await writer.submit(_op(n)))
        finally:
            ARRIVALS.done(ticket)

    results = await asyncio.gather(counted(1, 0), counted(2, 30), counted(3, 60))

    assert results == ["ok-t1", "ok-t2", "ok-t3"]
    assert seen.transactions == [["t1", "t2", "t3"]]
    assert ARRIVALS.pending == 0


async def test_uncounted_requests_many_turns_apart_are_not_waited_for(
    writer: UsageWriter, seen: Recorder
) -> None:
    async def late(n: int, turns: int) -> Any:
        for _ in range(turns):
            await asyncio.sleep(0)  # ok: see above
        return seen.ok(await writer.submit(_op(n)))

    await asyncio.gather(late(1, 0), late(2, 30))
    assert seen.transactions == [["t1"], ["t2"]]


async def test_the_wait_for_arrivals_is_bounded(writer: UsageWriter, seen: Recorder) -> None:
    """A counted request that never arrives (a client that stops sending its body) delays the
    others by at most the writer's round limit."""
    ticket = ARRIVALS.expect()
    try:
        assert seen.ok(await writer.submit(_op(1))) == "ok-t1"
    finally:
        ARRIVALS.done(ticket)
    counted = asyncio.Event()
    stuck = asyncio.get_running_loop().create_task(_never_arrives(counted))
    try:
        await counted.wait()
        assert ARRIVALS.pending == 1
        assert seen.ok(await writer.submit(_op(2))) == "ok-t2"
    finally:
        stuck.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stuck
    assert ARRIVALS.pending == 0
    assert seen.transactions == [["t1"], ["t2"]]


async def _never_arrives(counted: asyncio.Event) -> None:
    ticket = ARRIVALS.expect()
    counted.set()
    try:
        await asyncio.Event().wait()
    finally:
        ARRIVALS.done(ticket)
