"""The background worker: drains the Stripe outbox and retries failed webhook events.

Runs in-process under `billing-portal serve` (unless `RUN_WORKER=0`) or alone as
`billing-portal worker`. Several workers may run: a meter event sent twice is counted once
by Stripe (its `identifier`), and webhook handlers are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.engine import create_session_factory
from app.stripe.gateway import StripeGateway
from app.stripe_sync.outbox import drain
from app.stripe_sync.service import StripeEventService

log = structlog.get_logger()


class StripeWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        gateway: StripeGateway,
        events: Callable[[AsyncSession], StripeEventService],
        interval: float = 1.0,
    ) -> None:
        """`events` builds the event service on a session (app.composition)."""
        self.sessions = create_session_factory(engine)
        self.gateway = gateway
        self.events = events
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        async with self.sessions() as session:
            sent = await drain(session, self.gateway)
        async with self.sessions() as session:
            retried = await self.events(session).retry_failed()
        return sent + retried

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # keep the loop alive; the next round tries again
                log.exception("stripe worker round failed")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
