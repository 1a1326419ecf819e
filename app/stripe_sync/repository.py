"""All SQL of the event ledger and the outbox sender."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.checkout_status import CompletedCheckout
from app.metering.outbox import StripeOutboxMessage, meter_event_message
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

    async def completed_checkout(self, session_id: str) -> CompletedCheckout | None:
        """The `checkout.session.completed` event of a Checkout Session, if it arrived (what
        billing's success page needs: app.billing.checkout_status.CheckoutLedger)."""
        event = await self.session.scalar(
            select(StripeEvent)
            .where(
                StripeEvent.type == "checkout.session.completed",
                StripeEvent.object_id == session_id,
            )
            .limit(1)
        )
        if event is None:
            return None
        obj = (event.payload.get("data") or {}).get("object") or {}
        metadata = obj.get("metadata") or {}
        failed = await self.session.scalar(
            select(StripeEvent.id)
            .where(
                StripeEvent.type == "checkout.session.async_payment_failed",
                StripeEvent.object_id == session_id,
                StripeEvent.status == "processed",
            )
            .limit(1)
        )
        return CompletedCheckout(
            status=event.status,
            stripe_customer_id=event.stripe_customer_id,
            mode=str(obj["mode"]) if obj.get("mode") else None,
            pack_slug=str(metadata["pack"]) if metadata.get("pack") else None,
            last_error=event.last_error,
            payment_failed=failed is not None,
        )


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, now: datetime, limit: int, lease: timedelta) -> list[StripeOutboxMessage]:
        """Up to `limit` due pending messages, oldest usage first, leased until `now + lease`
        (due again then, for any worker, unless sent or failed before). Call in a write
        transaction (`write_from_here`): on SQLite its lock, on PostgreSQL `FOR UPDATE SKIP
        LOCKED` keep two workers from claiming the same rows."""
        query = (
            select(StripeOutboxMessage)
            .where(
                StripeOutboxMessage.status == "pending",
                StripeOutboxMessage.next_attempt_at <= now,
            )
            .order_by(StripeOutboxMessage.created_at, StripeOutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed = list(await self.session.scalars(query))
        for message in claimed:
            message.next_attempt_at = now + lease
        return claimed

    async def flag_rejected(self, rejected: dict[str, str]) -> list[str]:
        """Mark the meter events Stripe rejected after accepting them (identifier → error)
        `rejected`, for an admin: resending an identifier Stripe already took changes
        nothing. Returns the identifiers found in the outbox."""
        rows = await self.session.scalars(
            select(StripeOutboxMessage).where(
                StripeOutboxMessage.idempotency_key.in_(list(rejected))
            )
        )
        found = []
        for row in rows:
            row.status, row.last_error = "rejected", rejected[row.idempotency_key][:4000]
            found.append(row.idempotency_key)
        await self.session.flush()
        return sorted(found)

    async def requeue_dead(self, now: datetime) -> int:
        result = await self.session.execute(
            update(StripeOutboxMessage)
            .where(StripeOutboxMessage.status == "dead")
            .values(status="pending", next_attempt_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def add_meter_event(
        self,
        *,
        identifier: str,
        stripe_customer_id: str,
        meter_code: str,
        value: int,
        timestamp: datetime,
    ) -> None:
        """Add a meter event in the caller's transaction (a repeat is a no-op). The usage
        writer adds its rows in its own batch (app.metering.batch_repository)."""
        values = meter_event_message(
            identifier=identifier,
            stripe_customer_id=stripe_customer_id,
            meter_code=meter_code,
            value=value,
            now=timestamp,
        )
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(StripeOutboxMessage).values(**values)
        await self.session.execute(
            statement.on_conflict_do_nothing(index_elements=["idempotency_key"])
        )
