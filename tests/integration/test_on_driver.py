"""SyncWork.on_driver (PostgreSQL): the asyncpg connection kept for the usage writer's batches
written without locks; and the writer engine's generic plans."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from app.db.engine import SyncWork, create_engine
from tests.conftest import PG_SKIP_REASON
from tests.support import configured_database_url


@pytest.fixture
async def work() -> AsyncIterator[SyncWork]:
    url = configured_database_url()
    if not url:
        pytest.skip(PG_SKIP_REASON)
    engine = create_engine(url, generic_plans=True, pool_pre_ping=False)
    work = SyncWork(engine)
    yield work
    await work.close()
    await engine.dispose()


async def _pid(conn: Any, pause: asyncio.Event | None = None) -> int:
    if pause is not None:
        await pause.wait()
    return int(await conn.fetchval("SELECT pg_backend_pid()"))


async def test_calls_share_one_connection_in_autocommit(work: SyncWork) -> None:
    assert await work.on_driver(_pid) == await work.on_driver(_pid)

    async def in_transaction(conn: Any) -> bool:
        await conn.execute("CREATE TEMP TABLE IF NOT EXISTS t (x int)")
        return bool(conn.is_in_transaction())

    assert await work.on_driver(in_transaction) is False


async def test_a_call_while_the_connection_is_busy_gets_another(work: SyncWork) -> None:
    pause = asyncio.Event()
    first = asyncio.create_task(work.on_driver(_pid, pause))
    await asyncio.sleep(0)  # the first call holds the kept connection
    second = await work.on_driver(_pid)
    pause.set()
    assert await first != second
    # One connection is kept, the other went back to the pool.
    assert await work.on_driver(_pid) in (await first, second)


async def test_a_connection_the_database_dropped_is_replaced(work: SyncWork) -> None:
    before = await work.on_driver(_pid)
    async with work.engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before})

    # The call that meets the dropped connection fails (its caller falls back to the pool);
    # a later one runs on a new connection.
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver says of it
        await work.on_driver(_pid)
    for _ in range(2):
        try:
            after = await work.on_driver(_pid)
            break
        except Exception:  # the driver may notice the drop one call late
            continue
    assert after != before


async def test_the_writer_engine_plans_each_statement_once(work: SyncWork) -> None:
    async def mode(conn: Any) -> str:
        return str(await conn.fetchval("SHOW plan_cache_mode"))

    assert await work.on_driver(mode) == "force_generic_plan"


async def test_a_driver_failure_inside_another_error_drops_the_connection(work: SyncWork) -> None:
    """`unlocked.write_batch` raises NeedsLocks from the driver's own failure (a connection
    the server dropped mid-statement can leave asyncpg's protocol stuck, still 'open')."""
    before = await work.on_driver(_pid)

    async def stuck(conn: Any) -> None:
        try:
            raise asyncpg.InternalClientError("cannot switch to state 12")
        except asyncpg.InternalClientError as exc:
            raise RuntimeError("the batch takes the locked way") from exc

    with pytest.raises(RuntimeError):
        await work.on_driver(stuck)
    assert await work.on_driver(_pid) != before

    async def refused(conn: Any) -> None:  # the server's answer: the connection is fine
        await conn.execute("SELECT 1/0")

    kept = await work.on_driver(_pid)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await work.on_driver(refused)
    assert await work.on_driver(_pid) == kept


async def test_a_call_running_at_close_gives_its_connection_back(work: SyncWork) -> None:
    """Not kept after `close`: back to the pool, which its engine's dispose closes."""
    pause = asyncio.Event()
    running = asyncio.create_task(work.on_driver(_pid, pause))
    await asyncio.sleep(0)
    await work.close()
    pause.set()
    await running
    assert work.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_behind_pgbouncer_usage_batches_take_the_locked_way() -> None:
    """Behind PgBouncer asyncpg's unnamed statements would be prepared on one server
    connection and run on another: `on_driver` is not offered there."""
    url = configured_database_url()
    if not url:
        pytest.skip(PG_SKIP_REASON)
    bounced, direct = create_engine(url, pgbouncer=True), create_engine(url)
    try:
        assert not SyncWork(bounced).on_driver_ok
        assert SyncWork(direct).on_driver_ok
        with pytest.raises(RuntimeError):
            await SyncWork(bounced).on_driver(_pid)
    finally:
        await bounced.dispose()
        await direct.dispose()
