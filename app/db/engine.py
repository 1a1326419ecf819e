"""Engine and session factory; SQLite gets WAL, a busy timeout and explicit BEGIN handling."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import aiosqlite
import greenlet  # type: ignore[import-untyped]
import structlog
from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction
from sqlalchemy.pool import NullPool

# Its engine-wide hooks tell every process's page caches of the writes of this one.
from app.db import page_versions  # noqa: F401

IMMEDIATE = "sqlite_begin_immediate"
# An engine's execution option: its connections go through PgBouncer in transaction mode.
PGBOUNCER = "behind_pgbouncer"
# SQLite's lower() lowers ASCII letters only; this one lowers every letter, as PostgreSQL's
# does. Registered on every SQLite connection (see `_sqlite_events`).
UNICODE_LOWER = "unicode_lower"
CHECKPOINT_SECONDS = 1.0
log = structlog.get_logger()
T = TypeVar("T")


def pgbouncer_connect_args() -> dict[str, Any]:
    """asyncpg behind PgBouncer in transaction mode: consecutive transactions of one client
    connection may run on different server connections, so no prepared statement may be
    kept and reused by name. asyncpg's statement cache and SQLAlchemy's off, and each
    statement prepared under a name of its own (never one another server connection knows)."""
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4()}__",
    }


def create_engine(
    database_url: str, *, pgbouncer: bool = False, generic_plans: bool = False, **kwargs: Any
) -> AsyncEngine:
    """`pgbouncer` (DATABASE_PGBOUNCER, PostgreSQL only): see `pgbouncer_connect_args`.
    `generic_plans` (PostgreSQL): each prepared statement planned once per connection, not at
    every execution: PostgreSQL's default plans a statement anew for each call until it trusts
    a generic plan, and may never do so for one with array parameters, whose planning can cost
    more than running it. For point reads and writes by key, whose plan is the same whatever
    the values. (Behind PgBouncer statements are not kept, so this changes nothing there.)"""
    if database_url.startswith("sqlite"):
        return _sqlite_engine(database_url, **kwargs)
    if pgbouncer:
        kwargs["connect_args"] = {**pgbouncer_connect_args(), **kwargs.get("connect_args", {})}
        kwargs["execution_options"] = {**kwargs.get("execution_options", {}), PGBOUNCER: True}
    elif generic_plans:
        args = kwargs.setdefault("connect_args", {})
        args["server_settings"] = {
            **args.get("server_settings", {}),
            "plan_cache_mode": "force_generic_plan",
        }
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(database_url, **kwargs)


def _sqlite_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    if ":memory:" in database_url or database_url.rstrip("/").endswith("sqlite+aiosqlite:"):
        raise ValueError("an in-memory SQLite database cannot be shared; use a file path")
    kwargs.setdefault(
        "connect_args",
        {"timeout": 30, "check_same_thread": False, "async_creator_fn": _reads_on_loop},
    )
    kwargs.setdefault("pool_size", 8)
    kwargs.setdefault("max_overflow", 8)
    engine = create_async_engine(database_url, **kwargs)
    _sqlite_events(engine.sync_engine)
    return engine


class _ReadsOnLoop(aiosqlite.Connection):
    """aiosqlite, except that what cannot wait for a lock runs right on the event loop.

    aiosqlite sends every call (each statement, each fetch) to the connection's thread and
    back: a page's ten queries were ten thread hops, each waiting for the GIL under load
    (milliseconds of CPU and latency per page). In WAL mode a read never waits for a lock, so
    reads (`BEGIN`, `SELECT`, fetches, the end of a transaction that wrote nothing) run on the
    loop, in microseconds. Whatever may wait for SQLite's write lock (`BEGIN IMMEDIATE`,
    writes, the `COMMIT` after them) still goes to the thread: the holder of that lock may be
    a coroutine on this very loop."""

    _wrote = False

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if args and isinstance(args[0], str):
            if not _READ.match(args[0]):
                self._wrote = True
                return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        elif getattr(fn, "__name__", "") in ("commit", "rollback"):
            wrote, self._wrote = self._wrote, False
            if wrote:
                return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        return fn(*args, **kwargs)


_READ = re.compile(r"\s*(SELECT|BEGIN\s*$|PRAGMA\s+\w+\s*$)", re.IGNORECASE)


def _reads_on_loop(database: str, **kwargs: Any) -> aiosqlite.Connection:
    return _ReadsOnLoop(partial(sqlite3.connect, database, **kwargs), 64)


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function(UNICODE_LOWER, 1, _unicode_lower, deterministic=True)
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
    return async_sessionmaker(
        engine, expire_on_commit=False, class_=AsyncSession, sync_session_class=AppSession
    )


# ORM sessions on SQLite -----------------------------------------------------------------------
#
# A SQLite transaction reads from the snapshot of its first read. If another connection commits
# before its first write, that write fails at once with SQLITE_BUSY_SNAPSHOT ("database is
# locked"), which no busy timeout waits out: under usage ingest, where the metering writer
# commits every few milliseconds, almost any page action that reads, calls Stripe and then
# writes would fail. So a service that writes after reading says so first: `write_from_here`
# ends the read-only part (nothing was written: the COMMIT changes nothing) and begins a write
# transaction (BEGIN IMMEDIATE, waiting for the lock like any writer). The reads before it each
# saw a committed state, as statements do on PostgreSQL under read committed, which these code
# paths are written for; the reads after it see the latest commit.
#
# The app's sessions (`AppSession`) keep a safety net for a write that forgot to say so: the
# same switch at its first flush or DML statement, with an `ImplicitWriteTransaction` warning
# (an error in the test suite, so every write path in the tests is explicit). Transactions
# begun with `begin_write`, and savepoints, are left as they are.


class ImplicitWriteTransaction(UserWarning):
    """A session wrote after reading without `write_from_here`: the net switched it to a write
    transaction (SQLite only). Call `write_from_here` before the reads that decide the write."""


class AppSession(Session):
    """The app's ORM session class (SQLite write-transaction handling below)."""


_WRITING = "sqlite_writing"


def _writing(session: Session) -> bool:
    """Whether the session's current transaction already holds SQLite's write lock. The mark
    names the transaction it was made in, so it can never outlive it (a mark left over from an
    ended transaction once let the next one write without the lock: "database is locked")."""
    marked = session.info.get(_WRITING)
    return marked is not None and marked is session.get_transaction()


def _write_from_here(session: Session, *, implicit: bool = False) -> None:
    if _writing(session):
        return
    if session.get_bind().dialect.name != "sqlite":
        return
    if not session.in_transaction():
        session.connection(execution_options={IMMEDIATE: True})  # begins BEGIN IMMEDIATE
        session.info[_WRITING] = session.get_transaction()
        return
    conn = session.connection()
    if conn.get_execution_options().get(IMMEDIATE):
        session.info[_WRITING] = session.get_transaction()
        return
    if session.in_nested_transaction():
        # Ending the read part would end the savepoint too; the write would then meet
        # "database is locked" whenever another connection committed since the first read.
        raise RuntimeError(
            "a savepoint inside a read transaction cannot take SQLite's write lock: "
            "call write_from_here before begin_nested"
        )
    session.info[_WRITING] = session.get_transaction()
    if implicit:
        _warn_implicit_write()
    conn.exec_driver_sql("COMMIT")
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _warn_implicit_write() -> None:
    """Warn as from the code that wrote (an async session runs this in a greenlet whose parent
    holds the caller's frames), so a warnings filter can tell the app's writes from others'."""
    parent = getattr(greenlet.getcurrent(), "parent", None)
    for start in (sys._getframe(1), parent.gr_frame if parent is not None else None):
        frame = start
        while frame is not None:
            module = str(frame.f_globals.get("__name__", ""))
            if not module.startswith(("sqlalchemy", "app.db.engine", "greenlet", "asyncio")):
                warnings.warn_explicit(
                    f"{module}:{frame.f_lineno} wrote after reads without write_from_here()",
                    ImplicitWriteTransaction,
                    frame.f_code.co_filename,
                    frame.f_lineno,
                    module=module,
                )
                return
            frame = frame.f_back
    warnings.warn(
        "a write after reads without write_from_here()", ImplicitWriteTransaction, stacklevel=2
    )


async def write_from_here(session: AsyncSession) -> None:
    """Make the rest of this transaction a write transaction now (SQLite: end the read-only
    part, wait for the write lock), so the reads that follow see the latest commits and
    decide the writes: what `SELECT ... FOR UPDATE` gives on PostgreSQL, where this does
    nothing. No-op once the transaction has written."""
    await session.run_sync(_write_from_here)


@event.listens_for(AppSession, "before_flush")
def _before_flush(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    if session.new or session.dirty or session.deleted:
        _write_from_here(session, implicit=True)


@event.listens_for(AppSession, "do_orm_execute")
def _before_dml(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        _write_from_here(state.session, implicit=True)


@event.listens_for(AppSession, "after_transaction_end")
def _after_transaction(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_WRITING, None)


async def begin_write(session: AsyncSession) -> None:
    """Start the session's transaction as a write transaction (call before any query)."""
    if session.in_transaction():
        raise RuntimeError("begin_write must open the transaction")
    await write_from_here(session)


class SyncWork:
    """Runs a function of a sync `Connection` in one transaction, the cheapest way per engine.

    On SQLite every statement through aiosqlite is a thread hop that queues behind the GIL
    under load; here a whole unit of work costs one hop or none:

    - Writes first try to take SQLite's write lock right on the event loop without waiting
      (busy timeout 0). When they get it, the unit of work runs there: nothing else in this
      process can be holding the lock, no statement inside waits for one, and no thread hop
      or GIL hand-off is paid (a fifth of the CPU per event under load). When the lock is
      held (another process, or an ORM transaction in flight), the unit of work goes to a
      worker thread and waits there, never on the loop: the holder may be a coroutine on
      this very loop.
    - Those loop-side writes never checkpoint the WAL themselves (that is file I/O and an
      fsync); a worker thread does, at most every `CHECKPOINT_SECONDS`.
    - Reads in WAL mode take no lock and touch a few indexed rows, so they run on the loop.

    Elsewhere the function runs on the async driver through `run_sync`. The same code serves
    both.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sync: Engine | None = None
        self._held: dict[asyncio.AbstractEventLoop, AsyncConnection] = {}
        self._closed = False
        self._eager: Engine | None = None
        self._checkpoint: asyncio.Future[None] | None = None
        self._last_checkpoint = time.monotonic()
        if engine.dialect.name == "sqlite":
            url = engine.url.set(drivername="sqlite+pysqlite")
            args = {"timeout": 30, "check_same_thread": False}
            self._sync = create_sync_engine(url, connect_args=args, pool_size=4, max_overflow=4)
            _sqlite_events(self._sync)
            self._eager = create_sync_engine(url, connect_args=args, pool_size=1, max_overflow=4)
            _sqlite_events(self._eager)
            event.listen(self._eager, "connect", _never_wait)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        if self._sync is None:
            return await self._run_async(fn, args)
        try:
            result = self._write_on_loop(fn, args)
        except _LockHeld:
            return await asyncio.to_thread(self._in_thread, fn, args, True)
        self._maybe_checkpoint()
        return result

    @property
    def on_driver_ok(self) -> bool:
        """Whether `on_driver` may be used: PostgreSQL, not behind PgBouncer (there asyncpg,
        keeping no statements, prepares an unnamed one and runs it in two exchanges, which
        transaction pooling may send to two server connections)."""
        return (
            self.engine.dialect.name == "postgresql"
            and not self.engine.get_execution_options().get(PGBOUNCER)
        )

    async def on_driver(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """PostgreSQL (`on_driver_ok`): `await fn(driver_connection, *args)` on the asyncpg
        connection this event loop keeps for these calls, where each statement is a
        transaction of its own (autocommit): no pool checkout, no BEGIN and COMMIT, no
        SQLAlchemy between the caller and the driver, for a unit of work whose one write
        statement decides alone whether it applies. A call while another holds that connection
        gets one from the pool."""
        if not self.on_driver_ok:
            raise RuntimeError("on_driver is for PostgreSQL without PgBouncer")
        loop = asyncio.get_running_loop()
        held = self._held.pop(loop, None) or await self.engine.connect()
        reusable = False
        driver: Any = None
        try:
            driver = (await held.get_raw_connection()).driver_connection
            result = await fn(driver, *args)
            reusable = True
            return result
        except Exception as exc:
            # A statement the server refused leaves the connection as it was; a failure of
            # the driver or the connection does not, even one `fn` wrapped in its own error.
            # (A cancelled call is not an Exception: its connection may be mid-way.)
            reusable = driver is not None and not driver.is_closed() and not _driver_failed(exc)
            raise
        finally:
            if reusable and not self._closed and loop not in self._held and not loop.is_closed():
                self._held[loop] = held
            else:
                if not reusable:
                    await held.invalidate()
                await held.close()

    async def close(self) -> None:
        """`dispose`, and the connections kept for `on_driver` closed (this loop's) or let go;
        a call still running closes its connection when it ends."""
        self._closed = True
        loop = asyncio.get_running_loop()
        held, self._held = self._held, {}
        for held_loop, conn in held.items():
            if held_loop is loop:
                await conn.close()
        self.dispose()

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._sync is None:
            return await self._run_async(fn, args)
        return self._in_thread(fn, args, False)

    async def _run_async(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_in_transaction, fn, args)

    def _write_on_loop(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        assert self._eager is not None
        with self._eager.connect() as conn:
            conn = conn.execution_options(**{IMMEDIATE: True})
            try:
                transaction = conn.begin()
            except OperationalError as exc:
                if is_busy(exc):
                    raise _LockHeld from exc
                raise
            with transaction:
                return fn(conn, *args)

    def _in_thread(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        assert self._sync is not None
        with self._sync.connect() as conn:
            if write:
                conn = conn.execution_options(**{IMMEDIATE: True})
            return _in_transaction(conn, fn, args)

    def _maybe_checkpoint(self) -> None:
        now = time.monotonic()
        if self._checkpoint is not None or now - self._last_checkpoint < CHECKPOINT_SECONDS:
            return
        self._last_checkpoint = now
        self._checkpoint = asyncio.get_running_loop().run_in_executor(None, self._run_checkpoint)
        self._checkpoint.add_done_callback(self._checkpoint_done)

    def _run_checkpoint(self) -> None:
        assert self._sync is not None
        with self._sync.connect() as conn:
            # PASSIVE: copies what no reader still needs, waits for nobody, blocks no writer.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _checkpoint_done(self, future: asyncio.Future[None]) -> None:
        self._checkpoint = None
        if not future.cancelled() and future.exception() is not None:
            log.warning("WAL checkpoint failed", error=str(future.exception()))

    def dispose(self) -> None:
        for engine in (self._sync, self._eager):
            if engine is not None:
                engine.dispose()


def _driver_failed(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, is asyncpg's or the connection's own
    failure (not an error the server answered a statement with)."""
    import asyncpg

    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, OSError) or (
            type(seen).__module__.startswith("asyncpg")
            and not isinstance(seen, asyncpg.PostgresError)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked": another connection's write was in the way (held past the
    busy timeout, or committed between this transaction's read and its write). Nothing of the
    failed transaction was committed, and the same request a moment later succeeds."""
    if not isinstance(exc, OperationalError):
        return False
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF == sqlite3.SQLITE_BUSY)  # also the extended BUSY_SNAPSHOT, ...
    return "database is locked" in str(exc.orig)


class _LockHeld(Exception):
    """SQLite's write lock is taken; the write must wait for it off the event loop."""


def _never_wait(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _in_transaction(conn: Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    with conn.begin():
        return fn(conn, *args)


__all__ = [
    "IMMEDIATE",
    "PGBOUNCER",
    "UNICODE_LOWER",
    "AppSession",
    "ImplicitWriteTransaction",
    "NullPool",
    "SyncWork",
    "begin_write",
    "create_engine",
    "create_session_factory",
    "is_busy",
    "write_from_here",
]
