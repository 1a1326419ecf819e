"""Telling every process at once that rows it may have cached changed.

Each process caches API key lookups (app/apikeys/service.py) and balance reads
(app/metering/cache.py). A committed write that makes such an entry wrong (a key revoked, a
plan changed, credits granted) is announced as `(topic, subject)`, and every process drops the
entries it names (`subject` None: all of the topic's):

- SQLite (one host, one or more processes): a line added to `<database>-changes`, next to
  the database file, once the write committed (app/db/change_file.py). Each process compares
  that file's mapped header (16 bytes in memory, no query, no system call) before it trusts a
  cached key or balance, so the next request after the writing one returned sees the change,
  in every process.
- PostgreSQL (any number of hosts): `NOTIFY` inside the writing transaction (PostgreSQL
  delivers it on commit, never for a rollback); each process `LISTEN`s on a connection of its
  own. A change holds everywhere within the notification's latency (milliseconds). While that
  connection is lost the caches are emptied and their expiry bounds staleness (5 s for keys,
  1 s for balances) until it is back; a query every `KEEPALIVE_SECONDS` notices a dead one.

ORM writes announce themselves: `track(Model, topic, subject_of)` registers flush events, so
every code path that changes such a row (services, webhooks, admin, the CLI) is covered.
Writes through Core (the usage writer) call `announce()` after their commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from sqlalchemy import Connection, event, func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, object_session

from app.db import change_file

log = structlog.get_logger()

API_KEYS = "api_keys"
BALANCES = "balances"
CHANNEL = "billing_portal_changes"
KEEPALIVE_SECONDS = 10.0
LISTEN_START_SECONDS = 5.0
_PENDING = "billing_portal_pending_changes"

Change = tuple[str, str | None]
Callback = Callable[[str | None], None]


def _line(change: Change) -> str:
    return json.dumps(change)


def changes_file(url: URL) -> str | None:
    """Where SQLite deployments announce changes; None on other databases."""
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return os.path.abspath(url.database) + "-changes"


def _append(path: str, changes: Iterable[Change]) -> None:
    change_file.append(path, [_line(change).encode() + b"\n" for change in changes])


def _notify(connection: Connection, changes: Iterable[Change]) -> None:
    for change in changes:
        connection.execute(select(func.pg_notify(CHANNEL, _line(change))))


async def announce(engine: AsyncEngine, changes: set[Change]) -> None:
    """Announce changes a Core write has just committed (ORM writes need not call this).
    Never raises: the write stands, and the caches' expiry bounds what was not heard."""
    if not changes:
        return
    try:
        path = changes_file(engine.url)
        if path is not None:
            _append(path, changes)
        elif engine.dialect.name == "postgresql":
            async with engine.begin() as conn:
                await conn.run_sync(_notify, changes)
    except Exception:  # the write stands; other processes' caches catch up by expiry
        log.warning("change not announced", changes=sorted(map(str, changes)), exc_info=True)


def track(model: type[Any], topic: str, subject_of: Callable[[Any], str | None]) -> None:
    """Announce `(topic, subject_of(row))` whenever the ORM updates or deletes a `model` row,
    once the transaction commits."""

    def changed(_mapper: Any, connection: Connection, target: Any) -> None:
        change = (topic, subject_of(target))
        path = changes_file(connection.engine.url)
        if path is None:
            if connection.dialect.name == "postgresql":
                _notify(connection, [change])
            return
        session = object_session(target)
        if session is not None:
            session.info.setdefault(_PENDING, set()).add((path, change))

    event.listen(model, "after_update", changed)
    event.listen(model, "after_delete", changed)


@event.listens_for(Session, "after_commit")
def _publish_committed(session: Session) -> None:
    pending: set[tuple[str, Change]] | None = session.info.pop(_PENDING, None)
    for path in {path for path, _ in pending or ()}:
        try:
            _append(path, [change for where, change in pending or () if where == path])
        except OSError:  # committed all the same: never turn that into an error
            log.warning("change not announced; caches catch up by expiry", exc_info=True)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


class ChangeWatch:
    """One per app: hears announced changes and passes them to the caches' callbacks.

    `poll()` runs before a cached key or balance is trusted; on SQLite it reads the changes
    file when its header moved, elsewhere it does nothing (the listener pushes)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._callbacks: dict[str, list[Callback]] = {}
        path = changes_file(engine.url)
        self._file = change_file.ChangeFile(path) if path is not None else None
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        if self._file is None:
            self.poll = _nothing  # type: ignore[method-assign]

    def on(self, topic: str, callback: Callback) -> None:
        self._callbacks.setdefault(topic, []).append(callback)

    def _dispatch(self, topic: str, subject: str | None) -> None:
        for callback in self._callbacks.get(topic, ()):
            callback(subject)

    def _everything_changed(self) -> None:
        for topic in self._callbacks:
            self._dispatch(topic, None)

    # SQLite: the changes file --------------------------------------------------------------

    def poll(self) -> None:
        file = self._file
        if file is not None and file.changed():
            try:
                lines = file.read()
            except OSError:  # unreadable (another user's umask): something changed, not what
                log.warning("changes file unreadable", path=file.path, exc_info=True)
                lines = None
            if lines is None:
                self._everything_changed()
                return
            for raw in lines:
                self._heard(raw)

    def _heard(self, raw: bytes | str) -> None:
        try:
            topic, subject = json.loads(raw)
        except (ValueError, TypeError):
            self._everything_changed()
            return
        self._dispatch(topic, subject)

    # PostgreSQL: LISTEN ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the changes file (SQLite), or listen (PostgreSQL): then returns once
        listening, or after `LISTEN_START_SECONDS` (the listener keeps trying meanwhile)."""
        if self._file is not None:
            self._file.open()
            self._listener = asyncio.create_task(self._recheck_file(), name="changes-file")
            return
        if self.engine.dialect.name != "postgresql" or self._listener is not None:
            return
        self._listening = asyncio.Event()  # of this event loop (a test may start an app twice)
        self._listener = asyncio.create_task(self._listen(), name="change-listener")
        try:
            await asyncio.wait_for(self._listening.wait(), LISTEN_START_SECONDS)
        except TimeoutError:
            log.warning("not yet listening for changes; caches rely on their expiry meanwhile")

    async def stop(self) -> None:
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._file is not None:
            self._file.close()

    async def _recheck_file(self) -> None:
        """A deleted or replaced changes file is noticed within `RECHECK_SECONDS`."""
        assert self._file is not None
        while True:
            await asyncio.sleep(change_file.RECHECK_SECONDS)
            try:
                if self._file.reopen_if_replaced():
                    self._everything_changed()
            except OSError:
                log.warning("changes file not reopened", path=self._file.path, exc_info=True)

    async def _listen(self) -> None:
        dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 0.5
        while True:
            try:
                await self._listen_once(dsn)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("change listener lost; reconnecting", error=str(exc)[:200])
            finally:
                if self._listening.is_set():
                    self._listening.clear()
                    self._everything_changed()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _listen_once(self, dsn: str) -> None:
        """Until the connection is lost: a dead peer is noticed by a query every
        `KEEPALIVE_SECONDS`, a closed one by asyncpg."""
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(dsn)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, lambda *args: self._heard(args[3]))
            # Whatever changed while nobody listened is unknown.
            self._everything_changed()
            self._listening.set()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), KEEPALIVE_SECONDS)
                if not lost.is_set():
                    await conn.fetchval("SELECT 1", timeout=KEEPALIVE_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 1.0)


def _nothing() -> None:
    return None
