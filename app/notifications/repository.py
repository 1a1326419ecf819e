"""All SQL of notifications: the email outbox, and the reads the worker's scans need."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import Invoice
from app.customers.models import Customer, Subscription
from app.metering.models import CreditGrant, UsageTotal
from app.notifications.models import EmailOutboxMessage

Outbox = EmailOutboxMessage


class NotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # The outbox ---------------------------------------------------------------------------

    async def insert_or_ignore(self, values: dict[str, Any]) -> bool:
        """Insert the row unless its dedupe_key exists; True when it was inserted."""
        bind = self.session.bind
        dialect = bind.dialect.name if bind is not None else "sqlite"
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = (
            insert(Outbox).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
        )
        result = await self.session.execute(statement)
        return bool(getattr(result, "rowcount", 0))

    async def existing_keys(self, keys: Iterable[str]) -> set[str]:
        keys = list(set(keys))
        if not keys:
            return set()
        found = await self.session.scalars(
            select(Outbox.dedupe_key).where(Outbox.dedupe_key.in_(keys))
        )
        return set(found)

    async def due_ids(self, now: datetime, limit: int) -> list[int]:
        query = (
            select(Outbox.id)
            .where(_claimable(now))
            .order_by(Outbox.next_attempt_at, Outbox.id)
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def claim(self, message_id: int, now: datetime, lease_until: datetime) -> bool:
        """Take the row for one send attempt (compare-and-set); False when someone else has it."""
        result = await self.session.execute(
            update(Outbox)
            .where(Outbox.id == message_id, _claimable(now))
            .values(status="sending", claimed_until=lease_until, attempts=Outbox.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def get(self, message_id: int) -> EmailOutboxMessage | None:
        return await self.session.get(Outbox, message_id, populate_existing=True)

    async def finish(self, message_id: int, **values: Any) -> None:
        """Record the outcome of this attempt (only while the row is still ours: `sending`)."""
        await self.session.execute(
            update(Outbox)
            .where(Outbox.id == message_id, Outbox.status == "sending")
            .values(claimed_until=None, **values)
            .execution_options(synchronize_session=False)
        )

    async def recent(self, status: str | None, limit: int, offset: int) -> list[EmailOutboxMessage]:
        query = select(Outbox).order_by(Outbox.id.desc()).limit(limit).offset(offset)
        if status:
            query = query.where(Outbox.status == status)
        return list(await self.session.scalars(query))

    async def count_by_status(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(Outbox.status, func.count()).group_by(Outbox.status)
        )
        return {status: int(count) for status, count in rows.all()}

    # What the emails are about ------------------------------------------------------------

    async def customer(self, customer_id: int) -> Customer | None:
        return await self.session.get(Customer, customer_id)

    async def invoice(self, stripe_invoice_id: str) -> tuple[Invoice, Customer] | None:
        row = (
            await self.session.execute(
                select(Invoice, Customer)
                .join(Customer, Customer.id == Invoice.customer_id)
                .where(Invoice.stripe_invoice_id == stripe_invoice_id)
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def subscription(
        self, stripe_subscription_id: str
    ) -> tuple[Subscription, Customer] | None:
        row = (
            await self.session.execute(
                select(Subscription, Customer)
                .join(Customer, Customer.id == Subscription.customer_id)
                .where(Subscription.stripe_subscription_id == stripe_subscription_id)
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def customers_with_usage_since(
        self, since: datetime, after_id: int, limit: int
    ) -> list[int]:
        """Customers (by id, after `after_id`) whose running totals changed since `since`."""
        query = (
            select(UsageTotal.customer_id)
            .where(UsageTotal.updated_at >= since, UsageTotal.customer_id > after_id)
            .group_by(UsageTotal.customer_id)
            .order_by(UsageTotal.customer_id)
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def customers(self, ids: Iterable[int]) -> list[Customer]:
        ids = list(ids)
        if not ids:
            return []
        return list(await self.session.scalars(select(Customer).where(Customer.id.in_(ids))))

    async def expiring_grants(
        self, now: datetime, until: datetime, limit: int
    ) -> list[tuple[CreditGrant, Customer]]:
        rows = await self.session.execute(
            select(CreditGrant, Customer)
            .join(Customer, Customer.id == CreditGrant.customer_id)
            .where(
                CreditGrant.remaining > 0,
                CreditGrant.expires_at > now,
                CreditGrant.expires_at <= until,
            )
            .order_by(CreditGrant.expires_at, CreditGrant.id)
            .limit(limit)
        )
        return [(grant, customer) for grant, customer in rows.all()]


def _claimable(now: datetime) -> Any:
    """Due and pending, or claimed by a worker whose lease ran out (it crashed or hung)."""
    return or_(
        and_(Outbox.status == "pending", Outbox.next_attempt_at <= now),
        and_(Outbox.status == "sending", Outbox.claimed_until < now),
    )
