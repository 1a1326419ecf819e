"""Metering's SQL for reads: customers with their plan, and balances from the running totals,
credits and holds, as plain functions of a sync Connection (see app.db.engine.SyncWork);
the pages' event and credit-ledger lists on the request's session.
The writer's own statements (locks, idempotency lookups, inserts) are in
app.metering.batch_repository.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer, Subscription
from app.lib.clock import as_utc
from app.metering.balance import BillingCycle
from app.metering.models import CreditGrant, CreditLedgerEntry, Reservation, UsageEvent, UsageTotal
from app.metering.state import CustomerPlan

totals_t = cast(Table, UsageTotal.__table__)
grants_t = cast(Table, CreditGrant.__table__)
reservations_t = cast(Table, Reservation.__table__)
customers_t = cast(Table, Customer.__table__)
subscriptions_t = cast(Table, Subscription.__table__)


def plan_row(row: Any) -> CustomerPlan:
    cycle = None
    if row.current_period_start is not None and row.current_period_end is not None:
        cycle = BillingCycle(
            start=as_utc(row.current_period_start),
            end=as_utc(row.current_period_end),
            interval=row.interval,
        )
    return CustomerPlan(
        id=row.id,
        external_id=row.external_id,
        subscription_external_id=row.sub_external_id,
        plan_slug=row.plan_slug,
        status=row.status,
        cycle=cycle,
        stripe_customer_id=row.stripe_customer_id,
        deleted=row.deleted_at is not None,
        stripe_subscription_id=row.stripe_subscription_id,
    )


_PLAN_COLUMNS = (
    customers_t.c.id,
    customers_t.c.external_id,
    customers_t.c.stripe_customer_id,
    subscriptions_t.c.external_id.label("sub_external_id"),
    subscriptions_t.c.plan_slug,
    subscriptions_t.c.status,
    subscriptions_t.c.stripe_subscription_id,
    subscriptions_t.c.current_period_start,
    subscriptions_t.c.current_period_end,
    subscriptions_t.c.interval,
    customers_t.c.deleted_at,
)


# Hot statements are built once: constructing a statement costs more than running it.
_PLAN_FROM = customers_t.join(subscriptions_t, subscriptions_t.c.customer_id == customers_t.c.id)
_PLAN_BY_EXTERNAL_ID = (
    select(*_PLAN_COLUMNS)
    .select_from(_PLAN_FROM)
    .where(customers_t.c.external_id == bindparam("external_id"))
)
_PLAN_BY_ID = (
    select(*_PLAN_COLUMNS).select_from(_PLAN_FROM).where(customers_t.c.id == bindparam("id"))
)


def customer_plan(
    conn: Connection, external_id: str | None = None, customer_id: int | None = None
) -> CustomerPlan | None:
    if external_id is not None:
        row = conn.execute(_PLAN_BY_EXTERNAL_ID, {"external_id": external_id}).first()
    else:
        row = conn.execute(_PLAN_BY_ID, {"id": customer_id}).first()
    return plan_row(row) if row is not None else None


# One statement for every batch, whatever it holds: building one per batch cost more than
# running it, and left its parameters to the cyclic garbage collector.
_PLANS = (
    select(*_PLAN_COLUMNS)
    .select_from(_PLAN_FROM)
    .where(
        or_(
            customers_t.c.external_id.in_(bindparam("external_ids", expanding=True)),
            subscriptions_t.c.external_id.in_(bindparam("subscription_ids", expanding=True)),
            customers_t.c.id.in_(bindparam("customer_ids", expanding=True)),
        )
    )
)


def customer_plans(
    conn: Connection,
    external_ids: Iterable[str] = (),
    subscription_ids: Iterable[str] = (),
    customer_ids: Iterable[int] = (),
) -> list[CustomerPlan]:
    params = {
        "external_ids": list(set(external_ids)),
        "subscription_ids": list(set(subscription_ids)),
        "customer_ids": list(set(customer_ids)),
    }
    if not any(params.values()):
        return []
    return [plan_row(row) for row in conn.execute(_PLANS, params).all()]


# Reads (no locks) -----------------------------------------------------------------


_TOTALS = select(
    totals_t.c.meter_code, totals_t.c.period_start, totals_t.c.used, totals_t.c.credits_used
).where(
    totals_t.c.customer_id == bindparam("customer_id"),
    # Three plain parameters, not an expanding IN (re-rendered on every call): a plan has at
    # most three current periods, one per reset kind (day, billing period, never).
    totals_t.c.period_start.in_(
        [bindparam(f"start_{i}", type_=totals_t.c.period_start.type) for i in range(3)]
    ),
)
_CREDITS = (
    select(grants_t.c.meter_code, func.sum(grants_t.c.remaining))
    .where(
        grants_t.c.customer_id == bindparam("customer_id"),
        grants_t.c.remaining > 0,
        or_(grants_t.c.expires_at.is_(None), grants_t.c.expires_at > bindparam("now")),
    )
    .group_by(grants_t.c.meter_code)
)
_HOLDS = (
    select(reservations_t.c.meter_code, func.sum(reservations_t.c.amount))
    .where(
        reservations_t.c.customer_id == bindparam("customer_id"),
        reservations_t.c.status == "held",
        reservations_t.c.expires_at > bindparam("now"),
    )
    .group_by(reservations_t.c.meter_code)
)


def totals_for(
    conn: Connection, customer_id: int, keys: Sequence[tuple[str, datetime]]
) -> dict[tuple[str, datetime], Any]:
    if not keys:
        return {}
    wanted = set(keys)
    starts = sorted({period for _, period in keys})
    if len(starts) > 3:
        raise ValueError("at most three current periods (day, billing period, never)")
    starts += [starts[0]] * (3 - len(starts))
    params = {"customer_id": customer_id, **{f"start_{i}": start for i, start in enumerate(starts)}}
    rows = conn.execute(_TOTALS, params)
    found = {(row.meter_code, as_utc(row.period_start)): row for row in rows}
    return {key: row for key, row in found.items() if key in wanted}


def credits_by_meter(conn: Connection, customer_id: int, now: datetime) -> dict[str, int]:
    rows = conn.execute(_CREDITS, {"customer_id": customer_id, "now": now})
    return {code: int(total) for code, total in rows}


def holds_by_meter(conn: Connection, customer_id: int, now: datetime) -> dict[str, int]:
    rows = conn.execute(_HOLDS, {"customer_id": customer_id, "now": now})
    return {code: int(total) for code, total in rows}


# Page reads (the request's ORM session) ---------------------------------------------


async def recent_events(session: AsyncSession, customer_id: int, limit: int) -> list[UsageEvent]:
    query = (
        select(UsageEvent)
        .where(UsageEvent.customer_id == customer_id)
        .order_by(UsageEvent.id.desc())
        .limit(limit)
    )
    return list(await session.scalars(query))


async def credit_ledger(
    session: AsyncSession, customer_id: int, limit: int
) -> list[tuple[CreditLedgerEntry, CreditGrant]]:
    query = (
        select(CreditLedgerEntry, CreditGrant)
        .join(CreditGrant, CreditGrant.id == CreditLedgerEntry.grant_id)
        .where(CreditLedgerEntry.customer_id == customer_id)
        .order_by(CreditLedgerEntry.id.desc())
        .limit(limit)
    )
    return [(entry, grant) for entry, grant in (await session.execute(query)).all()]
