"""The notification worker: scans for due usage/credit emails and drains the email outbox.

Runs next to the Stripe worker: in-process under `billing-portal serve` (unless
`RUN_WORKER=0`) or alone in `billing-portal worker`. Any number may run at once.

Delivery, exactly once as far as SMTP allows:

1. The outbox row is committed (`pending`) before anything is sent — by the webhook's
   transaction or the scan's.
2. A worker *claims* a due row with a compare-and-set UPDATE (`pending` and due, or
   `sending` with an expired lease → `sending`, `claimed_until = now + lease`, attempts + 1)
   and commits. Only the worker whose UPDATE matched sends; others skip the row.
3. It sends, then marks the row `sent` right after the server accepted it. A failure puts
   the row back to `pending` with a backoff (30 s · 2^(attempts-1), at most an hour); after
   `MAX_ATTEMPTS` (or a permanent 5xx refusal) it is `failed`.

A worker that dies after claiming but before the server accepted leaves a `sending` row
whose lease runs out; the next worker (after a restart, or another process) sends it: one
email. The window that remains: a crash *after* the server accepted and *before* `sent` is
committed. SMTP has no idempotency key, so that email goes out a second time after the
lease; it carries the same `Message-ID` (derived from the dedupe key), which lets mail
clients and archives recognise the duplicate. `stop()` lets an in-flight send finish (and be
recorded) before it returns, so an ordinary shutdown or deploy never opens that window.

Usage thresholds are found by a periodic scan of the running totals, not on the metering
write path (which must stay fast): customers whose `usage_totals.updated_at` moved since the
last scan get their balances evaluated (the dashboard's rules) and the 80 % / 100 % emails
enqueued once per meter and period. The first scan after a start looks back `FIRST_LOOKBACK`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.engine import begin_write, create_session_factory
from app.lib.clock import utcnow
from app.metering.service import MeteringService
from app.notifications.repository import NotificationRepository
from app.notifications.sender import PermanentSendError, Sender
from app.notifications.service import USAGE_KINDS, Draft, NotificationService

log = structlog.get_logger()

MAX_ATTEMPTS = 8
LEASE = timedelta(seconds=120)  # well above the SMTP timeout (20 s): a live send never loses it
SCAN_INTERVAL = 15.0
SCAN_OVERLAP = timedelta(minutes=2)  # totals stamped just before a scan but committed after it
FIRST_LOOKBACK = timedelta(days=1)
SCAN_CHUNK = 200


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


class NotificationWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        sender: Sender,
        *,
        notifications: Callable[[AsyncSession], NotificationService],
        metering: Callable[[AsyncSession], MeteringService],
        interval: float = 1.0,
        scan_interval: float = SCAN_INTERVAL,
        lease: timedelta = LEASE,
        batch: int = 50,
    ) -> None:
        """`notifications` and `metering` build those services on a session (app.composition)."""
        self.sessions = create_session_factory(engine)
        self.notifications = notifications
        self.metering = metering
        self.sender = sender
        self.interval = interval
        self.scan_interval = scan_interval
        self.lease = lease
        self.batch = batch
        self._last_scan: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # One round ----------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Scan when due, then send what is due; returns how many emails were sent."""
        now = utcnow()
        if self._last_scan is None or (now - self._last_scan).total_seconds() >= self.scan_interval:
            await self.scan(now)
        return await self.drain()

    async def scan(self, now: datetime | None = None) -> int:
        """Enqueue due usage-threshold and expiring-credit emails; returns how many.

        Each chunk is read in one transaction and written in another that takes the write
        lock first (SQLite: a read-then-write transaction could fail on a stale snapshot).
        Enqueueing is idempotent, so a draft queued meanwhile by another worker is a no-op.
        """
        now = now or utcnow()
        since = (self._last_scan or now - FIRST_LOOKBACK) - SCAN_OVERLAP
        queued = 0
        async with self.sessions() as session:
            service = self.notifications(session)
            metering = self.metering(session)
            after = 0
            while True:
                ids = await service.repo.customers_with_usage_since(since, after, SCAN_CHUNK)
                if not ids:
                    break
                queued += await self._enqueue(
                    session, service, await service.usage_drafts(metering, ids, now)
                )
                after = ids[-1]
            queued += await self._enqueue(session, service, await service.credit_drafts(now))
        self._last_scan = now
        return queued

    @staticmethod
    async def _enqueue(
        session: AsyncSession, service: NotificationService, drafts: list[Draft]
    ) -> int:
        await session.commit()  # end the read transaction
        if not drafts:
            return 0
        await begin_write(session)
        queued = await service.enqueue_drafts(drafts)
        await session.commit()
        return queued

    async def drain(self) -> int:
        async with self.sessions() as session:
            ids = await NotificationRepository(session).due_ids(utcnow(), self.batch)
            await session.commit()
        sent = 0
        for message_id in ids:
            if self._stopping.is_set():
                break
            sent += await self.deliver(message_id)
        return sent

    async def deliver(self, message_id: int) -> bool:
        """Claim, send and record one message; False when another worker has it or it failed."""
        async with self.sessions() as session:
            repo = NotificationRepository(session)
            now = utcnow()
            if not await repo.claim(message_id, now, now + self.lease):
                await session.rollback()
                return False
            await session.commit()
            message = await repo.get(message_id)
            assert message is not None
            opted_out = False
            if message.kind in USAGE_KINDS and message.customer_id is not None:
                customer = await repo.customer(message.customer_id)
                opted_out = customer is not None and not customer.usage_emails
            await session.commit()  # no transaction open during the network call
            if opted_out:
                await repo.finish(message_id, status="skipped", last_error="usage emails are off")
                await session.commit()
                return False
            try:
                await self.sender.send(message)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:4000]
                if isinstance(exc, PermanentSendError) or message.attempts >= MAX_ATTEMPTS:
                    await repo.finish(message_id, status="failed", last_error=error)
                else:
                    await repo.finish(
                        message_id,
                        status="pending",
                        last_error=error,
                        next_attempt_at=utcnow() + backoff(message.attempts),
                    )
                await session.commit()
                log.warning("email send failed", id=message_id, kind=message.kind, error=error)
                return False
            await repo.finish(message_id, status="sent", sent_at=utcnow(), last_error=None)
            await session.commit()
            return True

    # Running ------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception:  # keep the loop alive; the next round tries again
                log.exception("notification worker round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self.run_forever())

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the email being sent (so it is recorded as sent), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
