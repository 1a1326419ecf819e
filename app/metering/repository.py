"""All SQL of metering, as plain functions of a sync Connection (see app.db.engine.SyncWork).

Hot paths use Core statements; locks are taken in a fixed order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import Connection, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.customers.models import Customer, Subscription
from app.lib.clock import as_utc
from app.metering.balance import BillingCycle, CreditLot
from app.metering.models import (
    CreditGrant,
    CreditLedgerEntry,
    Reservation,
    UsageDay,
    UsageEvent,
    UsageTotal,
)
from app.metering.outbox import StripeOutboxMessage

events_t = UsageEvent.__table__
totals_t = UsageTotal.__table__
days_t = UsageDay.__table__
grants_t = CreditGrant.__table__
ledger_t = CreditLedgerEntry.__table__
reservations_t = Reservation.__table__
customers_t = Customer.__table__
subscriptions_t = Subscription.__table__


# Statuses in which Stripe keeps invoicing the subscription (as billing's LIVE_STATUSES).
_BILLABLE_STATUSES = frozenset({"trialing", "active", "past_due"})


@dataclass(frozen=True)
class CustomerPlan:
    id: int
    external_id: str
    subscription_external_id: str
    plan_slug: str
    status: str
    cycle: BillingCycle | None
    stripe_customer_id: str | None = None
    stripe_subscription_id: str | None = None

    @property
    def bills_through_stripe(self) -> bool:
        """A live Stripe subscription carries the plan's metered prices, so overage can be
        billed; a plan set directly (complimentary, or by the API) cannot."""
        return (
            self.stripe_customer_id is not None
            and self.stripe_subscription_id is not None
            and self.status in _BILLABLE_STATUSES
        )


def _plan_row(row: Any) -> CustomerPlan:
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
    return _plan_row(row) if row is not None else None


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
    return [_plan_row(row) for row in conn.execute(_PLANS, params).all()]


# Which of these transaction ids a customer has used: one constant statement whatever the
# number of ids (an expanding IN is rendered anew for each count), and no row is decoded
# unless an id was used before, which is rare.
_SQLITE_USED_TX_IDS = (
    f"SELECT transaction_id FROM {events_t.name} "  # noqa: S608 - our own names
    "WHERE customer_id = ? AND transaction_id IN (SELECT value FROM json_each(?))"
)


def existing_events(
    conn: Connection, keys: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], Any]:
    if not keys:
        return {}
    if conn.dialect.name == "sqlite":
        by_customer: dict[int, list[str]] = {}
        for customer_id, transaction_id in keys:
            by_customer.setdefault(customer_id, []).append(transaction_id)
        used = [
            (customer_id, transaction_id)
            for customer_id, ids in by_customer.items()
            for (transaction_id,) in conn.exec_driver_sql(
                _SQLITE_USED_TX_IDS, (customer_id, _json_text(ids))
            )
        ]
        if not used:
            return {}
        keys = used
    customer_ids = {key[0] for key in keys}
    tx_ids = {key[1] for key in keys}
    query = select(events_t).where(
        events_t.c.customer_id.in_(customer_ids), events_t.c.transaction_id.in_(tx_ids)
    )
    return {(row.customer_id, row.transaction_id): row for row in (conn.execute(query)).all()}


def existing_reservations_by_tx(
    conn: Connection, keys: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], Any]:
    if not keys:
        return {}
    query = select(reservations_t).where(
        reservations_t.c.customer_id.in_({k[0] for k in keys}),
        reservations_t.c.transaction_id.in_({k[1] for k in keys}),
    )
    return {(row.customer_id, row.transaction_id): row for row in (conn.execute(query)).all()}


def reservations_by_public_id(conn: Connection, public_ids: Iterable[str]) -> dict[str, Any]:
    ids = list(set(public_ids))
    if not ids:
        return {}
    query = select(reservations_t).where(reservations_t.c.public_id.in_(ids)).with_for_update()
    return {row.public_id: row for row in (conn.execute(query)).all()}


def existing_grants(
    conn: Connection, keys: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], Any]:
    if not keys:
        return {}
    query = select(grants_t).where(
        grants_t.c.customer_id.in_({k[0] for k in keys}),
        grants_t.c.transaction_id.in_({k[1] for k in keys}),
    )
    return {(row.customer_id, row.transaction_id): row for row in (conn.execute(query)).all()}


_TOTAL_KEY = (
    (totals_t.c.customer_id == bindparam("customer_id"))
    & (totals_t.c.meter_code == bindparam("meter_code"))
    & (totals_t.c.period_start == bindparam("period_start"))
)
_INSERT_TOTAL = {
    name: insert(totals_t).on_conflict_do_nothing()
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_LOCK_TOTAL = select(totals_t).where(_TOTAL_KEY).with_for_update()
_LOCK_LOTS = (
    select(grants_t.c.id, grants_t.c.remaining, grants_t.c.expires_at)
    .where(
        grants_t.c.customer_id == bindparam("customer_id"),
        grants_t.c.meter_code == bindparam("meter_code"),
        grants_t.c.remaining > 0,
    )
    .order_by(grants_t.c.id)
    .with_for_update()
)
_HELD = select(func.coalesce(func.sum(reservations_t.c.amount), 0)).where(
    reservations_t.c.customer_id == bindparam("customer_id"),
    reservations_t.c.meter_code == bindparam("meter_code"),
    reservations_t.c.status == "held",
    reservations_t.c.expires_at > bindparam("now"),
)


def lock_total(
    conn: Connection,
    customer_id: int,
    meter_code: str,
    period_start: datetime,
    period_end: datetime | None,
    now: datetime,
) -> Any:
    """The running-total row of this period, created when missing, locked for the transaction."""
    key = {"customer_id": customer_id, "meter_code": meter_code, "period_start": period_start}
    row = conn.execute(_LOCK_TOTAL, key).first()
    if row is not None:
        return row
    conn.execute(
        _INSERT_TOTAL[conn.dialect.name],
        {**key, "period_end": period_end, "used": 0, "credits_used": 0, "updated_at": now},
    )
    return conn.execute(_LOCK_TOTAL, key).one()


def lock_credit_lots(
    conn: Connection, customer_id: int, meter_code: str, now: datetime
) -> tuple[list[CreditLot], list[Any]]:
    """Unexpired lots with credits left, and the expired ones that still show a remainder."""
    lots, expired = [], []
    for row in conn.execute(_LOCK_LOTS, {"customer_id": customer_id, "meter_code": meter_code}):
        expires_at = as_utc(row.expires_at) if row.expires_at else None
        if expires_at is not None and expires_at <= now:
            expired.append(row)
        else:
            lots.append(CreditLot(row.id, row.remaining, expires_at))
    return lots, expired


def held_amount(conn: Connection, customer_id: int, meter_code: str, now: datetime) -> int:
    params = {"customer_id": customer_id, "meter_code": meter_code, "now": now}
    return int(conn.execute(_HELD, params).scalar_one())


_UPDATE_TOTAL = (
    update(totals_t)
    .where(totals_t.c.id == bindparam("total_id"))
    .values(
        used=bindparam("used"), credits_used=bindparam("credits_used"), updated_at=bindparam("now")
    )
)


def update_total(
    conn: Connection, total_id: int, used: int, credits_used: int, now: datetime
) -> None:
    conn.execute(
        _UPDATE_TOTAL,
        {"total_id": total_id, "used": used, "credits_used": credits_used, "now": now},
    )


def set_grant_remaining(conn: Connection, remaining: dict[int, int]) -> None:
    for grant_id, value in remaining.items():
        conn.execute(update(grants_t).where(grants_t.c.id == grant_id).values(remaining=value))


class EventRow(NamedTuple):
    """A usage event to insert: every column but `id`, in the table's insert order. A tuple, so
    SQLite's driver takes it almost as it is, with attribute access for the batch's lookups."""

    public_id: str
    customer_id: int
    meter_code: str
    transaction_id: str
    amount: int
    credits_amount: int
    period_start: datetime
    timestamp: datetime
    properties: dict[str, Any]
    fingerprint: str
    external_subscription_id: str | None
    reservation_id: int | None
    created_at: datetime


_EVENT_COLUMNS = EventRow._fields
assert set(_EVENT_COLUMNS) == {c.name for c in events_t.columns} - {"id"}, "update EventRow"
_SQLITE_INSERT_EVENTS = (
    f"INSERT INTO {events_t.name} ({', '.join(_EVENT_COLUMNS)}) "  # noqa: S608 - our own names
    f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)})"
)


_encode_json = msgspec.json.Encoder().encode


def _json_text(value: Any) -> str:
    return _encode_json(value).decode()


def _sqlite_rows(rows: list[EventRow]) -> list[tuple[Any, ...]]:
    """The rows as SQLAlchemy would store them on SQLite (UTCDateTime, JSON), built directly:
    a batch shares a few timestamps, so each is formatted once."""
    formatted: dict[datetime, str] = {}

    def stamp(value: datetime) -> str:
        text = formatted.get(value)
        if text is None:
            text = formatted[value] = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return text

    return [
        (
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            stamp(row[6]),
            stamp(row[7]),
            _json_text(row[8]) if row[8] else "{}",
            row[9],
            row[10],
            row[11],
            stamp(row[12]),
        )
        for row in rows
    ]


def insert_events(conn: Connection, rows: list[EventRow]) -> None:
    """One executemany without RETURNING (SQLite would fall back to a round trip per row).
    On SQLite the rows go to the driver as plain tuples: SQLAlchemy's per-row parameter
    processing cost more than the insert itself."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_SQLITE_INSERT_EVENTS, _sqlite_rows(rows))
    else:
        conn.execute(events_t.insert(), [row._asdict() for row in rows])


def _add_to_day(insert: Any) -> Any:
    statement = insert(days_t)
    return statement.on_conflict_do_update(
        index_elements=[days_t.c.customer_id, days_t.c.meter_code, days_t.c.starts_at],
        set_={"amount": days_t.c.amount + statement.excluded.amount},
    )


_ADD_TO_DAYS = {
    name: _add_to_day(insert)
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def add_to_days(conn: Connection, amounts: dict[tuple[int, str, datetime], int]) -> None:
    """Add to the daily roll-ups, in key order (the order every process locks them in)."""
    if amounts:
        rows = [
            {"customer_id": c, "meter_code": m, "starts_at": s, "amount": amounts[(c, m, s)]}
            for c, m, s in sorted(amounts)
        ]
        conn.execute(_ADD_TO_DAYS[conn.dialect.name], rows)


def event_ids(conn: Connection, public_ids: Iterable[str]) -> dict[str, int]:
    ids = list(set(public_ids))
    if not ids:
        return {}
    query = select(events_t.c.id, events_t.c.public_id).where(events_t.c.public_id.in_(ids))
    return {row.public_id: row.id for row in (conn.execute(query)).all()}


def insert_grants(conn: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
    if not rows:
        return {}
    result = conn.execute(
        grants_t.insert().returning(
            grants_t.c.id, grants_t.c.public_id, sort_by_parameter_order=True
        ),
        rows,
    )
    return {row.public_id: row.id for row in result.all()}


outbox_t = StripeOutboxMessage.__table__
_INSERT_OUTBOX = {
    name: insert(outbox_t).on_conflict_do_nothing(index_elements=["idempotency_key"])
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def insert_outbox(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Stripe calls to make after the commit (overage meter events); a repeat is a no-op."""
    if rows:
        conn.execute(_INSERT_OUTBOX[conn.dialect.name], rows)


def insert_ledger(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(ledger_t.insert(), rows)


def insert_reservations(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(reservations_t.insert(), rows)


def update_reservation(conn: Connection, public_id: str, values: dict[str, Any]) -> None:
    conn.execute(
        update(reservations_t).where(reservations_t.c.public_id == public_id).values(**values)
    )


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
