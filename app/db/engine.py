"""Engine and session factory; SQLite gets WAL, a busy timeout and explicit BEGIN handling."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

IMMEDIATE = "sqlite_begin_immediate"


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
    engine = create_async_engine(database_url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE is possible.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A write transaction takes SQLite's write lock up front, so a read-then-write
        # never fails with a stale snapshot and concurrent writers queue instead.
        if conn.get_execution_options().get(IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, class_=AsyncSession)


async def begin_write(session: AsyncSession) -> None:
    """Start the session's transaction as a write transaction (call before any query)."""
    if session.in_transaction():
        raise RuntimeError("begin_write must open the transaction")
    await session.connection(execution_options={IMMEDIATE: True})


__all__ = ["IMMEDIATE", "NullPool", "begin_write", "create_engine", "create_session_factory"]
