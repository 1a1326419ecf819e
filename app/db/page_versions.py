"""Versions of everything a rendered page may show, for the page cache (app/billing/page_cache.py).

A cached page is served only while none of these moved since it was rendered:

- `data`: bumped after **every** committed transaction that wrote anything, through any
  engine of this process (ORM or Core, any table: users, memberships, sessions' rows,
  subscriptions, invoices, cards, settings...), found where no code path can skip it: an
  engine-wide `before_cursor_execute` marks the connection when it runs a statement that is
  not a read, and the pool's `checkin` (right after the commit or rollback, before the
  writing request carries on) bumps it. Other processes hear of it as the `PAGES` topic
  (app/db/changes.py): on SQLite a line appended to the changes file at check-in, on
  PostgreSQL a `NOTIFY` sent inside the writing transaction (delivered on commit).
- usage, per customer (`usage_stamp`): the usage writer's batches (events, reservations,
  grants) are announced per customer already (`BALANCES`, `Gathered`), so its connections
  are left out of `data` (`announced_per_customer()`, set in the writer's task) and its
  batches bump the customers they name once committed, before their requests are answered.
  Other processes' usage arrives through the `BALANCES` announcements; `None` (all
  customers, or announcements lost) bumps every customer (`usage_epoch`).

A write's bump comes after its commit and before its request is answered, so the next page
load after a write, in this process, is rendered anew; in another process within the
announcement's latency (milliseconds; on PostgreSQL a lost listener connection counts as
"everything changed"). A render that saw any bump while it ran is not kept (it may have read
before the commit).

Statements only this module's hooks see: they cost a prefix check per statement.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, event
from sqlalchemy.pool import Pool

from app.db import change_file
from app.db.changes import CHANNEL, changes_file

log = structlog.get_logger()

PAGES = "pages"
_WROTE = "billing_portal.page_data_written"
# A statement starting with one of these changes no row (`SELECT pg_notify`, `setval` and the
# like do, but only alongside statements that do).
_READS = ("SELECT", "PRAGMA", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SHOW", "SET ")
_LINE = b'["pages", null]\n'
_NOTIFY = f"SELECT pg_notify('{CHANNEL}', '[\"{PAGES}\", null]')"
_MAX_CUSTOMERS = 200_000

_per_customer: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "billing_portal_usage_writes", default=False
)


class PageVersions:
    """The per-process counters a cached page is checked against."""

    def __init__(self) -> None:
        self.data = 0
        self.usage_epoch = 0
        self.usage_any = 0  # every usage bump: for a page whose customer is not known
        self._tick = 0
        self._usage: dict[str, int] = {}

    def data_changed(self, _subject: str | None = None) -> None:
        self.data += 1

    def usage_changed(self, external_id: str | None) -> None:
        """One customer's usage, credits or holds changed (None: anyone's)."""
        self.usage_any += 1
        if external_id is None:
            self.usage_epoch += 1
            return
        if len(self._usage) >= _MAX_CUSTOMERS:
            self._usage.clear()
            self.usage_epoch += 1
        self._tick += 1
        self._usage[external_id] = self._tick

    def usage_stamp(self, external_id: str) -> int:
        return self._usage.get(external_id, 0)

    def snapshot(self) -> tuple[int, int, int, int]:
        """(data, usage epoch, usage tick, usage_any): a customer whose stamp is at most the
        tick was not bumped since."""
        return (self.data, self.usage_epoch, self._tick, self.usage_any)


VERSIONS = PageVersions()


def announced_per_customer() -> None:
    """The current task's writes announce themselves per customer (the usage writer's): they
    leave `data` alone. Set once in the writer's own task (a task has its own context)."""
    _per_customer.set(True)


@contextmanager
def unseen_by_pages() -> Iterator[None]:
    """Writes inside leave `data` alone: for what no cached page shows (a login's last-seen
    time, app/accounts/user_sessions.py, written at most once a minute per login while the
    user browses, which would otherwise end every cached page)."""
    token = _per_customer.set(True)
    try:
        yield
    finally:
        _per_customer.reset(token)


def _is_write(statement: str) -> bool:
    return not statement.lstrip()[:9].upper().startswith(_READS)


@event.listens_for(Engine, "before_cursor_execute")
def _statement(
    conn: Connection,
    _cursor: Any,
    statement: str,
    _parameters: Any,
    _context: Any,
    _executemany: bool,
) -> None:
    if _is_write(statement) and not _per_customer.get():
        # The value: where this database's processes hear of it (SQLite), else True.
        conn.info[_WROTE] = changes_file(conn.engine.url) or True


@event.listens_for(Engine, "commit")
def _before_commit(conn: Connection) -> None:
    # PostgreSQL delivers a NOTIFY sent inside the transaction on its commit, never on a
    # rollback. SQLite's processes hear of it after the commit (`_checked_in`).
    if conn.info.get(_WROTE) is True and conn.dialect.name == "postgresql":
        try:
            conn.exec_driver_sql(_NOTIFY)
        except Exception:  # the write stands; other processes' pages expire on their own
            log.warning("page change not announced", exc_info=True)


@event.listens_for(Pool, "checkin")
def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    wrote = record.info.pop(_WROTE, None) if record is not None else None
    if wrote is None:
        return
    VERSIONS.data_changed()
    if isinstance(wrote, str):
        try:
            change_file.append(wrote, [_LINE])
        except OSError:  # committed all the same; other processes' pages expire on their own
            log.warning("page change not announced", path=wrote, exc_info=True)


__all__ = ["PAGES", "VERSIONS", "PageVersions", "announced_per_customer", "unseen_by_pages"]
