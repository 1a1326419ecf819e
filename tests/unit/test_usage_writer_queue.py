"""The writer's queue: what arrives while a transaction is being gathered shares it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from app.metering import writer as writer_module
from app.metering.arrivals import ARRIVALS
from app.metering.ops import CustomerRef, RecordUsage
from app.metering.writer import UsageWriter


def _op(n: int) -> RecordUsage:
    return RecordUsage(CustomerRef("c"), "api_calls", f"t{n}", 1, None, {}, f"f{n}")


@pytest.fixture
def transactions(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    seen: list[list[str]] = []

    async def fake_apply(_work: Any, _catalog: Any, ops: list[Any], *_args: Any) -> list[Any]:
        seen.append([op.transaction_id for op in ops])
        return [(f"ok-{op.transaction_id}", None) for op in ops]

    monkeypatch.setattr(writer_module, "apply_batch", fake_apply)
    monkeypatch.setattr(writer_module, "_customer_of", lambda result: "c")
    return seen


@pytest.fixture
async def writer(tmp_path: Any) -> Any:
    from app.db.engine import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    usage_writer = UsageWriter(engine, catalog=None, upgrade_url="/upgrade")  # type: ignore[arg-type]
    yield usage_writer
    await usage_writer.close()
    await engine.dispose()


async def test_requests_arriving_a_few_loop_turns_apart_share_one_transaction(
    writer: UsageWriter, transactions: list[list[str]]
) -> None:
    async def late(n: int, turns: int) -> Any:
        for _ in range(turns):
            await asyncio.sleep(0)  # ok: a request still parsing its body, not a timed wait
        return await writer.submit(_op(n))

    results = await asyncio.gather(late(1, 0), late(2, 1), late(3, 2))

    assert results == ["ok-t1", "ok-t2", "ok-t3"]
    assert transactions == [["t1", "t2", "t3"]]


async def test_a_lone_request_is_not_held_back(
    writer: UsageWriter, transactions: list[list[str]]
) -> None:
    assert await writer.submit(_op(1)) == "ok-t1"
    assert await writer.submit(_op(2)) == "ok-t2"
    assert transactions == [["t1"], ["t2"]]


async def test_a_batch_request_gets_each_outcome_in_order(
    writer: UsageWriter, transactions: list[list[str]]
) -> None:
    outcomes = await writer.submit_many([_op(1), _op(2), _op(3)])
    assert outcomes == ["ok-t1", "ok-t2", "ok-t3"]
    assert transactions == [["t1", "t2", "t3"]]


async def test_the_writer_waits_for_usage_requests_known_to_be_on_their_way(
    writer: UsageWriter, transactions: list[list[str]]
) -> None:
    """A request counted by `ARRIVALS` joins the transaction even if it needs many more loop
    turns than the writer would otherwise wait (its body still arriving, say)."""

    async def counted(n: int, turns: int) -> Any:
        ticket = ARRIVALS.expect()
        try:
            for _ in range(turns):
                await asyncio.sleep(0)  # ok: a request still on its way, not a timed wait
            return await writer.submit(_op(n))
        finally:
            ARRIVALS.done(ticket)

    results = await asyncio.gather(counted(1, 0), counted(2, 30), counted(3, 60))

    assert results == ["ok-t1", "ok-t2", "ok-t3"]
    assert transactions == [["t1", "t2", "t3"]]
    assert ARRIVALS.pending == 0


async def test_uncounted_requests_many_turns_apart_are_not_waited_for(
    writer: UsageWriter, transactions: list[list[str]]
) -> None:
    async def late(n: int, turns: int) -> Any:
        for _ in range(turns):
            await asyncio.sleep(0)  # ok: see above
        return await writer.submit(_op(n))

    await asyncio.gather(late(1, 0), late(2, 30))
    assert transactions == [["t1"], ["t2"]]


async def test_the_wait_for_arrivals_is_bounded(
    writer: UsageWriter, transactions: list[list[str]]
) -> None:
    """A counted request that never arrives (a client that stops sending its body) delays the
    others by at most the writer's round limit."""
    ticket = ARRIVALS.expect()
    try:
        assert await writer.submit(_op(1)) == "ok-t1"
    finally:
        ARRIVALS.done(ticket)
    counted = asyncio.Event()
    stuck = asyncio.get_running_loop().create_task(_never_arrives(counted))
    try:
        await counted.wait()
        assert ARRIVALS.pending == 1
        assert await writer.submit(_op(2)) == "ok-t2"
    finally:
        stuck.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stuck
    assert ARRIVALS.pending == 0
    assert transactions == [["t1"], ["t2"]]


async def _never_arrives(counted: asyncio.Event) -> None:
    ticket = ARRIVALS.expect()
    counted.set()
    try:
        await asyncio.Event().wait()
    finally:
        ARRIVALS.done(ticket)
