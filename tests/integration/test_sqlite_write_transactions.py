"""ORM sessions on SQLite: a transaction that read, then writes after another connection
committed, writes instead of failing with a stale snapshot (SQLITE_BUSY_SNAPSHOT, which no
busy timeout waits out): its first write starts a fresh write transaction, as each statement
on PostgreSQL (read committed) sees the latest commits."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Integer, String, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.db.engine import (
    ImplicitWriteTransaction,
    begin_write,
    create_engine,
    create_session_factory,
    write_from_here,
)


class _Base(DeclarativeBase):
    pass


class Note(_Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String(50))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[AsyncSession, Path]]:
    path = tmp_path / "notes.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(_Base.metadata.create_all)
        await conn.execute(text("INSERT INTO notes (id, body) VALUES (1, 'first')"))
    async with create_session_factory(engine)() as session:
        yield session, path
    await engine.dispose()


def _commit_elsewhere(path: Path, body: str) -> None:
    """Another process's write (the usage writer, a webhook) landing between our read and write."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("INSERT INTO notes (body) VALUES (?)", (body,))
    other.close()


async def test_write_from_here_lets_a_read_then_write_see_the_latest_commit(db) -> None:
    """The rule the app's services follow: say where the writes start."""
    session, path = db
    assert await session.scalar(select(Note.body).where(Note.id == 1)) == "first"
    _commit_elsewhere(path, "meanwhile")
    await write_from_here(session)
    count = len(list(await session.scalars(select(Note.id))))
    assert count == 2  # the reads after it see the other connection's commit
    session.add(Note(body="mine"))
    await session.commit()
    rows = await session.scalars(select(Note.body).order_by(Note.id))
    assert list(rows) == ["first", "meanwhile", "mine"]


async def test_an_orm_flush_after_a_concurrent_commit_writes(db) -> None:
    """The net for a write that did not say so: it still writes, and warns."""
    session, path = db
    note = await session.scalar(select(Note).where(Note.id == 1))
    assert note is not None
    _commit_elsewhere(path, "meanwhile")
    note.body = "edited"
    session.add(Note(body="mine"))
    with pytest.warns(ImplicitWriteTransaction, match="without write_from_here"):
        await session.commit()

    rows = await session.scalars(select(Note.body).order_by(Note.id))
    assert list(rows) == ["edited", "meanwhile", "mine"]


async def test_a_dml_statement_after_a_concurrent_commit_writes(db) -> None:
    session, path = db
    assert await session.scalar(select(Note.body).where(Note.id == 1)) == "first"
    _commit_elsewhere(path, "meanwhile")
    with pytest.warns(ImplicitWriteTransaction):
        await session.execute(update(Note).where(Note.id == 1).values(body="updated"))
    await session.commit()
    assert await session.scalar(select(Note.body).where(Note.id == 1)) == "updated"


async def test_the_write_transaction_holds_the_lock_until_commit(db) -> None:
    session, path = db
    await session.scalar(select(Note.id))
    session.add(Note(body="mine"))
    with pytest.warns(ImplicitWriteTransaction):
        await session.flush()
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    await session.commit()
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()


async def test_a_transaction_begun_as_a_write_keeps_its_snapshot(db) -> None:
    """begin_write already holds the lock from the start: nothing is re-begun under it."""
    session, path = db
    await begin_write(session)
    await session.scalar(select(Note.id))
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("INSERT INTO notes (body) VALUES ('blocked')")
    other.close()
    session.add(Note(body="mine"))
    await session.commit()
    assert await session.scalar(select(Note.body).order_by(Note.id.desc()).limit(1)) == "mine"


async def test_write_from_here_makes_the_next_read_see_the_latest_commit(db) -> None:
    """What `FOR UPDATE` gives on PostgreSQL: two processes applying updates to one row
    serialize, and the second reads what the first committed before deciding its write."""
    session, path = db
    assert await session.scalar(select(Note.body).where(Note.id == 1)) == "first"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("UPDATE notes SET body = 'theirs' WHERE id = 1")
    other.close()
    # Still the transaction's snapshot: the other commit is not visible yet.
    assert await session.scalar(select(Note.body).where(Note.id == 1)) == "first"

    await write_from_here(session)
    note = await session.scalar(
        select(Note).where(Note.id == 1).execution_options(populate_existing=True)
    )
    assert note is not None and note.body == "theirs"
    note.body = "theirs, then mine"
    await session.commit()
    assert await session.scalar(select(Note.body).where(Note.id == 1)) == "theirs, then mine"


def _thread_id() -> int:
    return threading.get_ident()


async def test_reads_run_on_the_event_loop_and_writes_in_the_drivers_thread(db) -> None:
    """aiosqlite's thread hop per statement is skipped for reads (WAL: they never wait for a
    lock), never for what may wait for the write lock."""
    session, _path = db
    raw = await (await session.connection()).get_raw_connection()
    await raw.driver_connection.create_function("thread_id", 0, _thread_id)
    assert await session.scalar(text("SELECT thread_id()")) == threading.get_ident()
    await session.rollback()
    await begin_write(session)
    session.add(Note(body="written"))
    await session.flush()
    written = await session.scalar(text("SELECT thread_id()"))
    assert written == threading.get_ident()  # reads inside the write transaction hold the lock
    await session.commit()


async def test_a_write_waiting_for_the_lock_leaves_the_loop_running(db) -> None:
    """BEGIN IMMEDIATE waits for the write lock in the driver's thread: the loop goes on, so the
    lock's holder (here a callback on the same loop) can finish and let it through."""
    session, path = db
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, holder.execute, "COMMIT")
    started = time.monotonic()
    await asyncio.wait_for(begin_write(session), timeout=10)
    assert time.monotonic() - started < 5
    session.add(Note(body="after the wait"))
    await session.commit()
    holder.close()


async def test_a_write_mark_never_outlives_its_transaction(db) -> None:
    """The mark that says "this transaction holds the lock" names its transaction: one left
    in the session's info by an ended transaction (once seen in account deletion, where the
    next transaction then wrote without the lock and met "database is locked") is ignored."""
    session, path = db
    await write_from_here(session)
    await session.commit()
    session.sync_session.info["sqlite_writing"] = True  # a mark left behind, as before
    await write_from_here(session)
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")  # the lock is held: write_from_here took it
    other.close()
    await session.rollback()


async def test_a_savepoint_in_a_read_transaction_cannot_take_the_lock_silently(db) -> None:
    """Inside a savepoint the read part cannot be ended (that would end the savepoint), so a
    write there would meet "database is locked" after any other commit: the daily reconcile
    once did exactly that. Saying so is an error; taking the lock first works."""
    session, path = db
    await session.scalar(select(Note.body))
    nested = await session.begin_nested()
    with pytest.raises(RuntimeError, match="before begin_nested"):
        await write_from_here(session)
    await nested.rollback()
    await session.rollback()

    await session.scalar(select(Note.body))
    _commit_elsewhere(path, "meanwhile")
    await write_from_here(session)
    async with session.begin_nested():
        await write_from_here(session)  # the transaction holds the lock: nothing to do
        await session.execute(update(Note).where(Note.id == 1).values(body="second"))
    await session.commit()
    assert await session.scalar(select(Note.body).where(Note.id == 1)) == "second"
