"""The daily reconcile (issue 20, item 7; VantFlow's "billing sync job, daily at 2 AM").

`billing-portal reconcile` compares every Stripe customer's subscription, invoices, cards,
credit balance and billing details (name, address, invoice email, tax IDs) with Stripe's and
repairs our mirror. The worker runs the same once a day at
`RECONCILE_AT` (UTC, default 02:00; `off` turns it off), in every process that runs workers
(`billing-portal serve` unless RUN_WORKER=0, and `billing-portal worker`).

Exactly once per day, however many processes run it: the run is claimed by inserting the
day's audit entry (`reconcile.started`) whose `request_id` is `reconcile:<day>`, a unique
column: on PostgreSQL and SQLite alike only one insert commits, the others get the unique
violation and leave the day alone. The outcome is a second, append-only entry
(`reconcile.finished`, request id `reconcile:<day>:done`): customers checked, the drift
found (what differed; repaired unless the line says otherwise) and the errors. A process
that dies mid-run leaves a started entry without its finish: the overview shows it as not
finished, and `billing-portal reconcile` can be run by hand; the day is not run twice.

The schedule is pure (app/lib/schedule.py): the loop asks it when the next run is and
sleeps until then (at most `MAX_SLEEP`, so a changed clock is noticed), so tests pass `now`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import AuditLog
from app.billing.mirror import StripeMirror
from app.billing.service import BillingService
from app.db.engine import write_from_here
from app.lib.clock import utcnow
from app.lib.schedule import due_day, next_run

log = structlog.get_logger()

STARTED = "reconcile.started"
FINISHED = "reconcile.finished"
ACTOR = "system: daily reconcile"
MAX_SLEEP = 300.0
MAX_LINES = 200  # drift or error lines kept per run (the count is always exact)


@dataclass
class ReconcileResult:
    customers: int = 0
    drift: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def reconcile_all(
    session: AsyncSession, billing: BillingService, mirror: StripeMirror, *, repair: bool
) -> ReconcileResult:
    """Reconcile every Stripe customer, each in its own transaction (committed before the
    next, so no write lock is held across the whole walk); a customer whose reconcile fails
    is listed in `errors` and the walk goes on."""
    result = ReconcileResult()
    customers = await billing.stripe_customers()
    await session.commit()
    for customer in customers:
        label = customer.external_id
        result.customers += 1
        try:
            result.drift += await mirror.reconcile_customer(customer, repair=repair)
            await session.commit()
        except Exception as exc:
            await session.rollback()
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            result.errors.append(f"{label}: {message}")
            log.warning("reconcile of a customer failed", customer=label, error=message)
    return result


def _run_key(day: date) -> str:
    return f"reconcile:{day.isoformat()}"


async def claim_day(session: AsyncSession, day: date, at: time, now: datetime) -> bool:
    """Insert the day's `reconcile.started` entry; False when another process has it."""
    await session.commit()  # a fresh transaction (SQLite: no stale read snapshot)
    await write_from_here(session)
    session.add(
        AuditLog(
            actor_user_id=None,
            actor_email=ACTOR,
            action=STARTED,
            target_type="reconcile",
            target_id=day.isoformat(),
            reason=f"Daily reconcile at {at:%H:%M} UTC (RECONCILE_AT)",
            details={"process": f"{socket.gethostname()}:{os.getpid()}"},
            request_id=_run_key(day),
            created_at=now,
        )
    )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return False
    return True


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return [*lines[:MAX_LINES], f"… and {len(lines) - MAX_LINES} more"]


async def record_outcome(
    session: AsyncSession,
    day: date,
    started_at: datetime,
    finished_at: datetime,
    result: ReconcileResult | None,
    failure: str | None = None,
) -> AuditLog:
    """Append the day's `reconcile.finished` entry."""
    result = result or ReconcileResult()
    if failure is not None:
        status = "failed"
    elif result.errors:
        status = "errors"
    else:
        status = "drift" if result.drift else "ok"
    errors = result.errors + ([failure] if failure else [])
    await session.commit()
    await write_from_here(session)
    entry = AuditLog(
        actor_user_id=None,
        actor_email=ACTOR,
        action=FINISHED,
        target_type="reconcile",
        target_id=day.isoformat(),
        reason=_summary(status, result, errors),
        details={
            "status": status,
            "started_at": started_at.isoformat(),
            "finished_at": finished_at.isoformat(),
            "customers": result.customers,
            "drift_count": len(result.drift),
            "drift": _capped(result.drift),
            "repaired": True,
            "error_count": len(errors),
            "errors": _capped(errors),
        },
        request_id=f"{_run_key(day)}:done",
        created_at=finished_at,
    )
    session.add(entry)
    await session.commit()
    return entry


def _summary(status: str, result: ReconcileResult, errors: list[str]) -> str:
    checked = f"{result.customers} customer(s) checked"
    if status == "failed":
        return f"Failed: {errors[-1]}"[:500]
    text = f"{checked}; {len(result.drift)} difference(s) found and repaired"
    if errors:
        text += f"; {len(errors)} error(s)"
    return text[:500]


@dataclass(frozen=True)
class LastRun:
    """The latest daily reconcile, for the admin overview."""

    day: str
    started_at: datetime
    finished: AuditLog | None

    @property
    def status(self) -> str:
        if self.finished is None:
            return "running or interrupted"
        return str(self.finished.details.get("status", "ok"))

    @property
    def drift(self) -> list[str]:
        return list(self.finished.details.get("drift") or []) if self.finished else []

    @property
    def drift_count(self) -> int:
        return int(self.finished.details.get("drift_count") or 0) if self.finished else 0

    @property
    def errors(self) -> list[str]:
        return list(self.finished.details.get("errors") or []) if self.finished else []


async def last_run(session: AsyncSession) -> LastRun | None:
    """The newest `reconcile.started` entry and its finish, if any (two indexed reads)."""
    started = await session.scalar(
        select(AuditLog).where(AuditLog.action == STARTED).order_by(AuditLog.id.desc()).limit(1)
    )
    if started is None:
        return None
    finished = await session.scalar(
        select(AuditLog).where(AuditLog.request_id == f"{started.request_id}:done")
    )
    return LastRun(day=started.target_id, started_at=started.created_at, finished=finished)


ServicesOn = Callable[[AsyncSession], tuple[BillingService, StripeMirror]]


class ReconcileWorker:
    """Runs `reconcile_all` once a day at `at` (UTC); see the module docstring."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        services: ServicesOn,
        at: time,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """`services` builds the billing service and the mirror on a session
        (app.composition)."""
        self.sessions = sessions
        self.services = services
        self.at = at
        self.clock = clock
        self._done: date | None = None  # the last day this process saw claimed
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def run_once(self, now: datetime | None = None) -> AuditLog | None:
        """Run the day's reconcile if it is due and nobody has claimed it; its outcome entry
        (None when not due, or another process has the day)."""
        now = now or self.clock()
        day = due_day(now, self.at)
        if day is None or day == self._done:
            return None
        async with self.sessions() as session:
            claimed = await claim_day(session, day, self.at, now)
            self._done = day
            if not claimed:
                return None
            log.info("daily reconcile started", day=str(day))
            billing, mirror = self.services(session)
            result: ReconcileResult | None = None
            failure: str | None = None
            try:
                result = await reconcile_all(session, billing, mirror, repair=True)
            except Exception as exc:  # recorded: the overview shows it
                await session.rollback()
                failure = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                log.exception("daily reconcile failed", day=str(day))
            entry = await record_outcome(session, day, now, self.clock(), result, failure)
            log.info("daily reconcile finished", day=str(day), outcome=entry.reason)
            return entry

    def seconds_to_next(self, now: datetime) -> float:
        return min(max((next_run(now, self.at) - now).total_seconds(), 1.0), MAX_SLEEP)

    async def run_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception:  # the next round tries again (a claimed day is not re-run)
                log.exception("daily reconcile round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.seconds_to_next(self.clock()))

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self.run_forever())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        task.cancel()  # a run in progress stays "started": the overview says it was cut off
        with contextlib.suppress(asyncio.CancelledError):
            await task
