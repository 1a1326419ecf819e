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
Writes through Core (the usage writer) call `announce()` after their commit. Usage, the hot
path, goes through `Gathered`: the writer adds the customers a committed batch touched (a set
update, no I/O) and one task per process announces what gathered, at most every
`GATHER_SECONDS`, in as few lines as fit (`[topic + MANY, [subjects...], origin]`: one `NOTIFY`
statement, or one append to the changes file, whatever the batches' number). The process that
wrote ignores its own lines (`origin`): it dropped those entries at its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from sqlalchemy import Connection, event, func, select
from sqlalchemy.engine import URL, make_url
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
# A line naming many subjects of one topic: `[topic + MANY, [subject, ...], origin]`. Its own
# topic name, so a process of an older release (a rolling deploy) has no callback for it.
MANY = ":many"
# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; lines are cut below this.
_LINE_BYTES = 7000
GATHER_SECONDS = 0.05

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


def _many_lines(topic: str, subjects: Iterable[str], origin: str) -> list[str]:
    """`subjects` in lines of at most about `_LINE_BYTES` (json escapes non-ASCII: a byte a
    character)."""
    lines: list[str] = []
    chunk: list[str] = []
    size = 0
    for subject in sorted(subjects):
        cost = len(json.dumps(subject)) + 2
        if chunk and size + cost > _LINE_BYTES:
            lines.append(json.dumps([topic + MANY, chunk, origin]))
            chunk, size = [], 0
        chunk.append(subject)
        size += cost
    if chunk:
        lines.append(json.dumps([topic + MANY, chunk, origin]))
    return lines


# One statement in its own implicit transaction: one round trip. A NOTIFY takes a transaction id,
# so its commit would wait for a WAL flush: not worth one (a lost announcement costs a cache
# entry's expiry, 1 s), and the flush would queue with the usage writer's.
_NOTIFY_LINES = (
    "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, line)"
    " FROM unnest($2::text[]) AS line"
)


async def announce_lines(engine: AsyncEngine, lines: list[str]) -> None:
    """Announce ready-made lines (`_many_lines`) in one statement or one append. Never raises."""
    try:
        path = changes_file(engine.url)
        if path is not None:
            change_file.append(path, [line.encode() + b"\n" for line in lines])
        elif engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                await raw.driver_connection.execute(_NOTIFY_LINES, CHANNEL, lines)  # type: ignore[union-attr]
    except Exception:  # the writes stand; other processes' caches catch up by expiry
        log.warning("changes not announced", lines=len(lines), exc_info=True)


class Gathered:
    """Announces `(topic, subject)` changes off the hot path: `add()` only remembers them; one
    task announces what gathered `GATHER_SECONDS` after the first, in as few lines as fit. At
    most one announcement in flight, so under load their rate stays flat however many commits
    there are. Each instance has its own `origin`, which its process's `ChangeWatch` ignores."""

    def __init__(self, engine: AsyncEngine, topic: str) -> None:
        self.engine = engine
        self.topic = topic
        self.origin = secrets.token_hex(6)
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, subjects: Iterable[str]) -> None:
        self._pending.update(subjects)
        task = self._task
        if self._pending and (task is None or task.done() or task.get_loop().is_closed()):
            self._task = asyncio.get_running_loop().create_task(
                self._announce_soon(), name="announce-changes"
            )

    async def _announce_soon(self) -> None:
        while self._pending:
            await asyncio.sleep(GATHER_SECONDS)
            subjects, self._pending = self._pending, set()
            await announce_lines(self.engine, _many_lines(self.topic, subjects, self.origin))

    async def close(self) -> None:
        """Announce what is pending now (a process stopping), then stop."""
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        subjects, self._pending = self._pending, set()
        if subjects:
            await announce_lines(self.engine, _many_lines(self.topic, subjects, self.origin))


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

    def __init__(self, engine: AsyncEngine, listen_url: str | None = None) -> None:
        """`listen_url` (DATABASE_LISTEN_URL): where to LISTEN when the engine's URL is a
        pool in transaction mode (PgBouncer), which cannot hold a LISTEN: PostgreSQL itself,
        or a session-mode pool. The engine's URL when None."""
        self.engine = engine
        self.listen_url = listen_url
        self._callbacks: dict[str, list[Callback]] = {}
        path = changes_file(engine.url)
        self._file = change_file.ChangeFile(path) if path is not None else None
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._own: set[str] = set()
        if self._file is None:
            self.poll = _nothing  # type: ignore[method-assign]

    def on(self, topic: str, callback: Callback) -> None:
        self._callbacks.setdefault(topic, []).append(callback)

    def ignore_from(self, origin: str) -> None:
        """Lines a `Gathered` of this process wrote: its writer already dropped those entries."""
        self._own.add(origin)

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
            topic, subject, *origin = json.loads(raw)
            if topic.endswith(MANY):
                if origin and origin[0] in self._own:
                    return
                for one in subject:
                    self._dispatch(topic[: -len(MANY)], str(one))
                return
        except (ValueError, TypeError, AttributeError):
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
        url = make_url(self.listen_url) if self.listen_url else self.engine.url
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
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
        import asyncpg

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
