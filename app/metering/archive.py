"""Raw usage events out of the database once they are old (issue 18, item 6).

Nothing the app shows or charges needs a raw event after it was written: balances read the
running totals (`usage_totals`), the charts the daily roll-ups (`usage_days`,
`usage_meter_days`), invoices are Stripe's, and overage went to Stripe through the outbox in
the event's own transaction. Every event is added to those in the transaction that stores it,
so an event in the table is always rolled up already. What a raw event still serves: the
customer's and the admin's list of recent events, and the duplicate check of a retried
`transaction_id` (a retry of an archived event is counted again: keep events longer than any
client retries).

`archive_usage` moves events created before a cutoff, oldest first, in chunks: each chunk is
written to a gzip file of JSON lines (`usage_events-<first id>-<last id>.jsonl.gz`, written
under a temporary name, flushed to disk, then renamed) and only then deleted, in its own
transaction. Run again after a crash, it writes the same chunk again under the same name and
deletes it; run twice, the second run finds nothing. Balances, roll-ups and invoices are not
touched.

On PostgreSQL deletes leave dead rows for vacuum to reclaim; at 50M events a day partition
`usage_events` by month instead and detach old partitions (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import gzip
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import msgspec
import structlog
from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import write_from_here
from app.lib.clock import add_months, as_utc, start_of_month, utcnow
from app.metering.models import UsageEvent

CHUNK = 5_000
ARCHIVE_EVERY_SECONDS = 24 * 3600.0
log = structlog.get_logger()
events_t = cast(Table, UsageEvent.__table__)
_encode = msgspec.json.Encoder(enc_hook=lambda value: value.isoformat()).encode


@dataclass(frozen=True)
class Archived:
    events: int
    files: list[Path]


def retention_cutoff(months: int, now: datetime | None = None) -> datetime | None:
    """The start of the month `months` months before this one: events created before it go
    (with 3, on any day of April everything before January 1st). None keeps everything."""
    if months <= 0:
        return None
    return add_months(start_of_month(now or utcnow()), -months)


def parse_before(text: str) -> datetime:
    """`--before 2026-01-01` (a UTC day) or a full ISO time."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        return as_utc(datetime.fromisoformat(text))
    except ValueError as exc:
        raise ValueError(f"not a date: {text!r} (use YYYY-MM-DD)") from exc


def _row(row: Any) -> bytes:
    return _encode(dict(row._mapping)) + b"\n"


def _write_file(directory: Path, rows: list[Any]) -> Path:
    path = directory / f"usage_events-{rows[0].id}-{rows[-1].id}.jsonl.gz"
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
            for row in rows:
                handle.write(_row(row))
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(partial, path)
    return path


async def _chunk(session: AsyncSession, before: datetime, after_id: int) -> list[Any]:
    """The next events by id created before the cutoff. Ids grow with time (a batch's
    events get theirs as it commits), so the scan ends at the first chunk of newer events."""
    query = select(events_t).where(events_t.c.id > after_id).order_by(events_t.c.id).limit(CHUNK)
    rows = (await session.execute(query)).all()
    return [row for row in rows if as_utc(row.created_at) < before] if rows else []


async def archive_usage(
    sessions: async_sessionmaker[AsyncSession], before: datetime, directory: Path
) -> Archived:
    """Move the events created before `before` into gzip files under `directory`."""
    # Disk work in a thread: the worker's other jobs share this event loop.
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    files: list[Path] = []
    count = 0
    after_id = 0
    while True:
        async with sessions() as session:
            rows = await _chunk(session, before, after_id)
            if not rows:
                return Archived(count, files)
            files.append(await asyncio.to_thread(_write_file, directory, rows))
            await write_from_here(session)
            ids = [row.id for row in rows]
            await session.execute(
                delete(events_t).where(events_t.c.id.in_(ids), events_t.c.created_at < before)
            )
            await session.commit()
        count += len(rows)
        after_id = rows[-1].id


async def archive_every_day(
    sessions: async_sessionmaker[AsyncSession], months: int, directory: Path
) -> None:
    """The worker's job with USAGE_RETENTION_MONTHS set: once a day, archive what is older
    than the retention (a month's events go on the first run after their month is past it)."""
    while True:
        cutoff = retention_cutoff(months)
        if cutoff is not None:
            try:
                done = await archive_usage(sessions, cutoff, directory)
                if done.events:
                    log.info("usage events archived", events=done.events, before=str(cutoff))
            except Exception:
                log.exception("usage archive failed; next try in a day")
        await asyncio.sleep(ARCHIVE_EVERY_SECONDS)
