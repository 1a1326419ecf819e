"""Engine and session factory; SQLite gets WAL, a busy timeout and explicit BEGIN handling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

IMMEDIATE = "sqlite_begin_immediate"
T = TypeVar("T")


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    if database_url.startswith("sqlite"):
        return _sqlite_engine(database_url, **kwargs)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(database_url, **kwargs)


def _sqlite_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    if ":memory:" in database_url or database_url.rstrip("/").endswith("sqlite+aiosqlite:"):
        raise ValueError("an in-memory SQLite database cannot be shared; use a file path")
    kwargs.setdefault("connect_args", {"timeout": 30})
    kwargs.setdefault("pool_size", 8)
    kwargs.setdefault("max_overflow", 8)
    engine = create_async_engine(database_url, **kwargs)
    _sqlite_events(engine.sync_engine)
    return engine


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE is possible.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A write transaction takes SQLite's write lock up front, so a read-then-write
        # never fails with a stale snapshot and concurrent writers queue instead.
        if conn.get_execution_options().get(IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, class_=AsyncSession)


async def begin_write(session: AsyncSession) -> None:
    """Start the session's transaction as a write transaction (call before any query)."""
    if session.in_transaction():
        raise RuntimeError("begin_write must open the transaction")
    await session.connection(execution_options={IMMEDIATE: True})


class SyncWork:
    """Runs a function of a sync `Connection` in one transaction, the cheapest way per engine.

    On SQLite every statement through aiosqlite is a thread hop that queues behind the GIL
    under load; here a whole unit of work costs one hop or none. Writes run in a worker
    thread, because waiting for SQLite's write lock must never block the event loop (the
    holder may be a coroutine on this very loop). Reads in WAL mode take no lock and touch a
    few indexed rows, so they run right on the loop. Elsewhere the function runs on the async
    driver through `run_sync`. The same code serves both.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sync: Engine | None = None
        if engine.dialect.name == "sqlite":
            url = engine.url.set(drivername="sqlite+pysqlite")
            self._sync = create_sync_engine(
                url,
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=4,
                max_overflow=4,
            )
            _sqlite_events(self._sync)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(fn, args, write=True)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(fn, args, write=False)

    async def _run(self, fn: Callable[..., T], args: tuple[Any, ...], *, write: bool) -> T:
        if self._sync is not None:
            if write:
                return await asyncio.to_thread(self._in_thread, fn, args, write)
            return self._in_thread(fn, args, write)
        async with self.engine.connect() as conn:
            return await conn.run_sync(_in_transaction, fn, args)

    def _in_thread(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        assert self._sync is not None
        with self._sync.connect() as conn:
            if write:
                conn = conn.execution_options(**{IMMEDIATE: True})
            return _in_transaction(conn, fn, args)

    def dispose(self) -> None:
        if self._sync is not None:
            self._sync.dispose()


def _in_transaction(conn: Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    with conn.begin():
        return fn(conn, *args)


__all__ = [
    "IMMEDIATE",
    "NullPool",
    "SyncWork",
    "begin_write",
    "create_engine",
    "create_session_factory",
]
