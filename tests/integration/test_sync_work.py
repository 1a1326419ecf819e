"""SyncWork on SQLite: writes run on the loop when the lock is free, wait in a thread when not."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event

from app.db import engine as engine_module
from app.db.engine import SyncWork, create_engine


@pytest.fixture
async def work(tmp_path: Path) -> AsyncIterator[tuple[SyncWork, Path]]:
    path = tmp_path / "work.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    work = SyncWork(engine)
    await work.write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (x INTEGER)"))
    yield work, path
    work.dispose()
    await engine.dispose()


def _insert(conn: Connection, value: int) -> str:
    conn.exec_driver_sql("INSERT INTO t VALUES (?)", (value,))
    return threading.current_thread().name


def _values(conn: Connection) -> list[int]:
    return [row[0] for row in conn.exec_driver_sql("SELECT x FROM t ORDER BY x")]


async def test_a_write_with_the_lock_free_runs_on_the_loop(work: tuple[SyncWork, Path]) -> None:
    sync_work, _ = work
    assert await sync_work.write(_insert, 1) == threading.current_thread().name
    assert await sync_work.read(_values) == [1]


async def test_a_write_waits_for_a_held_lock_off_the_loop(work: tuple[SyncWork, Path]) -> None:
    sync_work, path = work
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (99)")
    loop_ran = asyncio.Event()

    def release() -> None:
        loop_ran.set()  # only possible while the write waits somewhere other than the loop
        other.execute("COMMIT")

    asyncio.get_running_loop().call_soon(release)
    ran_on = await sync_work.write(_insert, 2)

    assert loop_ran.is_set()
    assert ran_on != threading.current_thread().name
    assert await sync_work.read(_values) == [2, 99]
    other.close()


async def test_a_failing_write_rolls_back_and_frees_the_lock(
    work: tuple[SyncWork, Path],
) -> None:
    sync_work, _ = work

    def fails(conn: Connection) -> None:
        _insert(conn, 3)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await sync_work.write(fails)
    assert await sync_work.write(_insert, 4) == threading.current_thread().name
    assert await sync_work.read(_values) == [4]


async def test_loop_side_writes_leave_checkpoints_to_a_thread(
    work: tuple[SyncWork, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_work, path = work
    monkeypatch.setattr(engine_module, "CHECKPOINT_SECONDS", 0.0)
    loop = asyncio.get_running_loop()
    checkpointed = asyncio.Event()
    threads: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "wal_checkpoint" in statement:
            threads.append(threading.current_thread().name)
            loop.call_soon_threadsafe(checkpointed.set)

    event.listen(Engine, "after_cursor_execute", seen)
    try:
        assert await sync_work.write(_insert, 5) == threading.current_thread().name
        await asyncio.wait_for(checkpointed.wait(), timeout=10)
    finally:
        event.remove(Engine, "after_cursor_execute", seen)

    assert threads and threads[0] != threading.current_thread().name
    wal_pages = sqlite3.connect(path).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert wal_pages[0] == 0  # nothing blocked the checkpoint
