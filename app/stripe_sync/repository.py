"""All SQL of the event ledger and the outbox sender."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.metering.outbox import StripeOutboxMessage
from app.stripe_sync.models import StripeEvent


class StripeEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_event_id(self, stripe_event_id: str) -> StripeEvent | None:
        """The row as stored now (not a stale copy from this session's identity map)."""
        return await self.session.scalar(
            select(StripeEvent)
            .where(StripeEvent.stripe_event_id == stripe_event_id)
            .execution_options(populate_existing=True)
        )

    async def due_for_retry(
        self, now: datetime, in_flight: timedelta, max_attempts: int, limit: int
    ) -> list[StripeEvent]:
        """Failed events, and received ones abandoned for longer than `in_flight`, oldest first."""
        query = (
            select(StripeEvent)
            .where(
                or_(
                    StripeEvent.status == "failed",
                    (StripeEvent.status == "received")
                    & (StripeEvent.received_at < now - in_flight),
                ),
                StripeEvent.attempts < max_attempts,
            )
            .order_by(StripeEvent.stripe_created, StripeEvent.id)
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def checkout_completed(self, session_id: str) -> StripeEvent | None:
        """The `checkout.session.completed` event of a Checkout Session, if it arrived."""
        return await self.session.scalar(
            select(StripeEvent)
            .where(
                StripeEvent.type == "checkout.session.completed",
                StripeEvent.object_id == session_id,
            )
            .limit(1)
        )


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def due(self, now: datetime, limit: int) -> list[StripeOutboxMessage]:
        query = (
            select(StripeOutboxMessage)
            .where(
                StripeOutboxMessage.status == "pending",
                StripeOutboxMessage.next_attempt_at <= now,
            )
            .order_by(StripeOutboxMessage.id)
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def requeue_dead(self, now: datetime) -> int:
        result = await self.session.execute(
            update(StripeOutboxMessage)
            .where(StripeOutboxMessage.status == "dead")
            .values(status="pending", next_attempt_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)
