"""The background worker: drains the Stripe outbox, retries failed webhook events
and makes the auto top-up purchases (app/stripe_sync/auto_top_up.py).

Runs in-process under `billing-portal serve` (unless `RUN_WORKER=0`) or alone as
`billing-portal worker`. Several workers may run: each claims the outbox rows it sends (and a
meter event sent twice is counted once by Stripe, by its `identifier`), and webhook handlers
are idempotent. While the outbox has a backlog, rounds follow each other without a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.engine import create_session_factory
from app.stripe.gateway import StripeGateway
from app.stripe_sync.auto_top_up import AutoTopUps
from app.stripe_sync.outbox import MeterEventSender, drain
from app.stripe_sync.service import StripeEventService

log = structlog.get_logger()


class StripeWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        gateway: StripeGateway,
        events: Callable[[AsyncSession], StripeEventService],
        interval: float = 1.0,
        auto_top_ups: AutoTopUps | None = None,
    ) -> None:
        """`events` builds the event service on a session (app.composition); `auto_top_ups`
        evaluates the customers' auto top-up rules and makes their purchases each round."""
        self.sessions = create_session_factory(engine)
        self.gateway = gateway
        self.sender = MeterEventSender(gateway)  # keeps its stream session between rounds
        self.events = events
        self.interval = interval
        self.auto_top_ups = auto_top_ups
        self.backlog = False
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """One round: the outbox drained while rows are due (up to its round's time), then
        the failed events retried; returns how many of both went through."""
        async with self.sessions() as session:
            sent = await drain(session, self.sender)
        self.backlog = sent > 0  # more may be due: no pause before the next round
        async with self.sessions() as session:
            retried = await self.events(session).retry_failed()
        if self.auto_top_ups is not None:
            try:
                await self.auto_top_ups.run_once()
            except Exception:  # the outbox and events go on; the next round tries again
                log.exception("auto top-up round failed")
        return sent + retried

    async def run_forever(self) -> None:
        while True:
            self.backlog = False
            try:
                await self.run_once()
            except Exception:  # keep the loop alive; the next round tries again
                log.exception("stripe worker round failed")
            if not self.backlog:  # else straight on: the period's usage must reach Stripe
                await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
