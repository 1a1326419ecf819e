"""The customer's usage as CSV (issue 20, item 6): per UTC day per meter from the daily
roll-ups (`usage_days`) for a chosen date range (default: the current billing period), and
the raw usage events that arrived in the current billing period (the ones its usage counts).

Streamed (app/lib/csv_stream.py): each download reads on a session of its own that lives as
long as the download, a page at a time by keyset, and never holds more than a page. Times are
UTC, ISO 8601; properties are the event's JSON object (keys sorted, compact).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.billing.views import _billing_period
from app.customers.models import Customer, Subscription
from app.lib.clock import add_months, as_utc, start_of_month, utcnow
from app.lib.csv_stream import PAGE, csv_chunks, keyset_pages
from app.lib.date_ranges import DateRange
from app.metering.models import UsageDay, UsageEvent

DAY_COLUMNS = ("day", "meter", "amount")
EVENT_COLUMNS = ("event_id", "transaction_id", "meter", "value", "timestamp", "properties")


def iso(moment: datetime) -> str:
    return as_utc(moment).isoformat()


class UsageExport:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], page_size: int = PAGE) -> None:
        self.sessions = sessions
        self.page_size = page_size

    async def current_period(
        self, session: AsyncSession, customer_id: int, now: datetime | None = None
    ) -> tuple[datetime, datetime]:
        subscription = await session.scalar(
            select(Subscription).where(Subscription.customer_id == customer_id)
        )
        now = now or utcnow()
        if subscription is None:  # every customer has one; a month if not
            month = start_of_month(now)
            return month, add_months(month, 1)
        return _billing_period(subscription, now)

    async def period_range(self, customer: Customer, now: datetime | None = None) -> DateRange:
        """The current billing period as days (the default of the per-day download)."""
        async with self.sessions() as session:
            start, end = await self.current_period(session, customer.id, now)
        return DateRange(start.date(), as_utc(end - timedelta(microseconds=1)).date())

    # Per day ------------------------------------------------------------------------------

    async def day_chunks(
        self, customer_id: int, chosen: DateRange | None = None
    ) -> AsyncIterator[bytes]:
        """`day,meter,amount` rows, by day then meter, in `chosen` (None: from the current
        period's exact start to its end, so usage of the previous period's last part of the
        first day stays out)."""
        async with self.sessions() as session:
            if chosen is None:
                start, end = await self.current_period(session, customer_id)
            else:
                start, end = chosen.start, chosen.end
            async for chunk in csv_chunks(
                DAY_COLUMNS, self._days(session, customer_id, start, end), self.page_size
            ):
                yield chunk

    async def _days(
        self, session: AsyncSession, customer_id: int, start: datetime, end: datetime
    ) -> AsyncIterator[dict[str, Any]]:
        async def fetch(after: tuple[datetime, str] | None, size: int) -> Sequence[Any]:
            query = select(UsageDay.starts_at, UsageDay.meter_code, UsageDay.amount).where(
                UsageDay.customer_id == customer_id,
                UsageDay.starts_at >= start,
                UsageDay.starts_at < end,
            )
            if after is not None:
                query = query.where(tuple_(UsageDay.starts_at, UsageDay.meter_code) > after)
            query = query.order_by(UsageDay.starts_at, UsageDay.meter_code).limit(size)
            return (await session.execute(query)).all()

        # A day split by a period's start has two buckets: one row, summed. Buckets of a day
        # come in order, so a day's rows are adjacent per meter only within the day: hold the
        # day's rows until the day ends.
        day: str | None = None
        held: dict[str, int] = {}
        rows = keyset_pages(fetch, lambda r: (r[0], r[1]), self.page_size)
        async for starts_at, meter, amount in rows:
            this_day = as_utc(starts_at).date().isoformat()
            if this_day != day:
                for code in sorted(held):
                    yield {"day": day, "meter": code, "amount": held[code]}
                day, held = this_day, {}
            held[meter] = held.get(meter, 0) + int(amount)
        for code in sorted(held):
            yield {"day": day, "meter": code, "amount": held[code]}

    # Raw events ---------------------------------------------------------------------------

    async def event_chunks(self, customer_id: int) -> AsyncIterator[bytes]:
        """The events that arrived in the current billing period, in the order accepted: the
        events the period's usage counts (an event stamped before the period that arrives in
        it counts in it, and the roll-ups put it on the period's first day)."""
        async with self.sessions() as session:
            start, end = await self.current_period(session, customer_id)
            async for chunk in csv_chunks(
                EVENT_COLUMNS, self._events(session, customer_id, start, end), self.page_size
            ):
                yield chunk

    async def _events(
        self, session: AsyncSession, customer_id: int, start: datetime, end: datetime
    ) -> AsyncIterator[dict[str, Any]]:
        async def fetch(after: int | None, size: int) -> Sequence[Any]:
            query = select(
                UsageEvent.id,
                UsageEvent.public_id,
                UsageEvent.transaction_id,
                UsageEvent.meter_code,
                UsageEvent.amount,
                UsageEvent.timestamp,
                UsageEvent.properties,
            ).where(
                UsageEvent.customer_id == customer_id,
                UsageEvent.created_at >= start,
                UsageEvent.created_at < end,
            )
            if after is not None:
                query = query.where(UsageEvent.id > after)
            return (await session.execute(query.order_by(UsageEvent.id).limit(size))).all()

        rows = keyset_pages(fetch, lambda r: int(r[0]), self.page_size)
        async for _id, public_id, transaction_id, meter, amount, timestamp, props in rows:
            yield {
                "event_id": public_id,
                "transaction_id": transaction_id,
                "meter": meter,
                "value": amount,
                "timestamp": iso(timestamp),
                "properties": json.dumps(props or {}, sort_keys=True, separators=(",", ":")),
            }
