"""The metering writer's SQL: the locked loads of a batch's state, the idempotency lookups, and
the inserts and updates that persist what the rules produced. Plain functions of a sync
Connection (see app.db.engine.SyncWork), called inside the batch's write transaction.

Hot paths use Core statements built once; locks are taken in a fixed order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any, cast

import msgspec
from sqlalchemy import (
    BigInteger,
    Connection,
    String,
    Table,
    bindparam,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.customers.models import Subscription
from app.lib.clock import as_utc
from app.metering.balance import CreditLot, Period, usage_day_start
from app.metering.models import (
    CreditGrant,
    CreditLedgerEntry,
    Reservation,
    UsageDay,
    UsageEvent,
    UsageMeterDay,
    UsageTotal,
)
from app.metering.ops import REVOCATION_KINDS
from app.metering.outbox import StripeOutboxMessage
from app.metering.state import BatchState, EventRow

events_t = cast(Table, UsageEvent.__table__)
totals_t = cast(Table, UsageTotal.__table__)
days_t = cast(Table, UsageDay.__table__)
meter_days_t = cast(Table, UsageMeterDay.__table__)
# Rows per (meter, day) of `usage_meter_days`: each process adds to its own (by process id),
# so batches of different customers in different processes do not queue on one row.
METER_DAY_SHARDS = 16
grants_t = cast(Table, CreditGrant.__table__)
ledger_t = cast(Table, CreditLedgerEntry.__table__)
reservations_t = cast(Table, Reservation.__table__)


# Which of these transaction ids a customer has used: one constant statement whatever the
# number of ids (an expanding IN is rendered anew for each count), and no row is decoded
# unless an id was used before, which is rare.
_SQLITE_USED_TX_IDS = (
    f"SELECT transaction_id FROM {events_t.name} "  # noqa: S608 - our own names
    "WHERE customer_id = ? AND transaction_id IN (SELECT value FROM json_each(?))"
)


# PostgreSQL: the same, one constant (so prepared once) statement over two arrays, which the
# planner joins key by key on the unique (customer_id, transaction_id) index. An expanding IN
# was a new statement for every count of ids, and on fresh statistics PostgreSQL chose the
# (customer_id, id) index for it and filtered all of a customer's events.
_PG_EXISTING_EVENTS = select(events_t).where(
    tuple_(events_t.c.customer_id, events_t.c.transaction_id).in_(
        select(
            func.unnest(bindparam("customer_ids", type_=ARRAY(BigInteger))),
            func.unnest(bindparam("transaction_ids", type_=ARRAY(String))),
        )
    )
)


def existing_events(
    conn: Connection, keys: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], Any]:
    if not keys:
        return {}
    if conn.dialect.name == "postgresql":
        params = {"customer_ids": [k[0] for k in keys], "transaction_ids": [k[1] for k in keys]}
        return {
            (row.customer_id, row.transaction_id): row
            for row in conn.execute(_PG_EXISTING_EVENTS, params)
        }
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


def revoked_amounts(conn: Connection, grant_ids: list[int]) -> dict[int | str, int]:
    """Per grant, the credits revoked of it so far (refunds and disputes less restorations)."""
    if not grant_ids:
        return {}
    query = (
        select(ledger_t.c.grant_id, func.coalesce(func.sum(ledger_t.c.amount), 0))
        .where(ledger_t.c.grant_id.in_(grant_ids), ledger_t.c.kind.in_(REVOCATION_KINDS))
        .group_by(ledger_t.c.grant_id)
    )
    return {grant_id: -int(total) for grant_id, total in conn.execute(query).all()}


subscriptions_t = cast(Table, Subscription.__table__)
# PostgreSQL: FOR SHARE, in customer id order (SQLite: the batch's write lock already
# serializes it with a conversion).
_GUEST_STATUSES = (
    select(subscriptions_t.c.customer_id, subscriptions_t.c.status)
    .where(subscriptions_t.c.customer_id.in_(bindparam("ids", expanding=True)))
    .order_by(subscriptions_t.c.customer_id)
    .with_for_update(read=True)
)


def guest_statuses(conn: Connection, customer_ids: list[int]) -> dict[int, str]:
    """The subscription status of each guest, its row share-locked for the transaction."""
    rows = conn.execute(_GUEST_STATUSES, {"ids": customer_ids})
    return {customer_id: status for customer_id, status in rows}


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
    params = {"customer_id": customer_id, "meter_code": meter_code}
    return _split_lots(conn.execute(_LOCK_LOTS, params), now)


def _split_lots(rows: Iterable[Any], now: datetime) -> tuple[list[CreditLot], list[Any]]:
    lots, expired = [], []
    for row in rows:
        expires_at = as_utc(row.expires_at) if row.expires_at else None
        if expires_at is not None and expires_at <= now:
            expired.append(row)
        else:
            lots.append(CreditLot(row.id, row.remaining, expires_at))
    return lots, expired


def held_amount(conn: Connection, customer_id: int, meter_code: str, now: datetime) -> int:
    params = {"customer_id": customer_id, "meter_code": meter_code, "now": now}
    return int(conn.execute(_HELD, params).scalar_one())


# PostgreSQL: a slot's credit lots (locked) and its holds in one round trip, once its running
# total is locked. Not in the statement that locks the total: a statement reads from the
# snapshot it started with, and one that waited for the lock would see the lots and holds of
# before the other transaction's commit (the locked row alone is read again). Every round
# trip under the lock is a turn of the busy event loop while the other processes wait for
# the row, so the writer takes as few as it can there.
_PG_LOTS_AND_HELD = text(
    f"""
    SELECT h.held, g.id, g.remaining, g.expires_at
    FROM (
        SELECT coalesce(sum(amount), 0) AS held FROM {reservations_t.name}
        WHERE customer_id = :customer_id AND meter_code = :meter_code
          AND status = 'held' AND expires_at > :now
    ) AS h
    LEFT JOIN LATERAL (
        SELECT id, remaining, expires_at FROM {grants_t.name}
        WHERE customer_id = :customer_id AND meter_code = :meter_code AND remaining > 0
        ORDER BY id
        FOR UPDATE
    ) AS g ON true
    ORDER BY g.id
    """  # noqa: S608 - our own names
).bindparams(bindparam("now", type_=reservations_t.c.expires_at.type))


def lock_slot(
    conn: Connection, customer_id: int, meter_code: str, period: Period, now: datetime
) -> tuple[Any, list[CreditLot], list[Any], int]:
    """A slot's locked running total for `period` (created when missing), its unexpired credit
    lots and the expired ones that still show a remainder (locked too), and what its holds
    hold."""
    total = lock_total(conn, customer_id, meter_code, period.start, period.end, now)
    if conn.dialect.name != "postgresql":
        lots, expired = lock_credit_lots(conn, customer_id, meter_code, now)
        return total, lots, expired, held_amount(conn, customer_id, meter_code, now)
    params = {"customer_id": customer_id, "meter_code": meter_code, "now": now}
    rows = conn.execute(_PG_LOTS_AND_HELD, params).all()
    lots, expired = _split_lots((row for row in rows if row.id is not None), now)
    return total, lots, expired, int(rows[0].held)


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


# PostgreSQL: the whole batch in one constant statement, a column of values per array (the
# driver encodes each array in binary at once); SQLAlchemy's executemany rendered a
# multi-row VALUES of thirteen parameters a row, anew for each count of rows.
_PG_EVENT_TYPES = {
    "customer_id": "bigint",
    "amount": "bigint",
    "credits_amount": "bigint",
    "reservation_id": "bigint",
    "period_start": "timestamptz",
    "timestamp": "timestamptz",
    "created_at": "timestamptz",
    "properties": "text",
}
_PG_INSERT_EVENTS = (
    f"INSERT INTO {events_t.name} ({', '.join(_EVENT_COLUMNS)}) "  # noqa: S608 - our own names
    "SELECT "
    + ", ".join(f"{name}::json" if name == "properties" else name for name in _EVENT_COLUMNS)
    + " FROM unnest("
    + ", ".join(
        f"${i}::{_PG_EVENT_TYPES.get(name, 'text')}[]" for i, name in enumerate(_EVENT_COLUMNS, 1)
    )
    + f") AS rows({', '.join(_EVENT_COLUMNS)})"
)
_PROPERTIES = _EVENT_COLUMNS.index("properties")


def _pg_columns(rows: list[EventRow]) -> tuple[list[Any], ...]:
    columns = tuple(list(column) for column in zip(*rows, strict=True))
    columns[_PROPERTIES][:] = [
        _json_text(value) if value else "{}" for value in columns[_PROPERTIES]
    ]
    return columns


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


def _add_amounts(table: Table) -> dict[str, Any]:
    """Per dialect: insert rows of `table`, adding `amount` to a row already at the key."""
    statements = {}
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert)):
        statement = insert(table)
        statements[name] = statement.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={"amount": table.c.amount + statement.excluded.amount},
        )
    return statements


_ADD_TO_DAYS = _add_amounts(days_t)


def add_to_days(conn: Connection, amounts: dict[tuple[int, str, datetime], int]) -> None:
    """Add to the daily roll-ups, in key order (the order every process locks them in)."""
    if amounts:
        rows = [
            {"customer_id": c, "meter_code": m, "starts_at": s, "amount": amounts[(c, m, s)]}
            for c, m, s in sorted(amounts)
        ]
        conn.execute(_ADD_TO_DAYS[conn.dialect.name], rows)


def meter_day_shard() -> int:
    return os.getpid() % METER_DAY_SHARDS


def meterday_amounts(
    amounts: dict[tuple[int, str, datetime], int],
) -> dict[tuple[str, date], int]:
    """The daily roll-ups' amounts per (meter, UTC day): what every customer used."""
    totals: dict[tuple[str, date], int] = {}
    for (_customer, meter, starts_at), amount in amounts.items():
        key = (meter, starts_at.astimezone(UTC).date())
        totals[key] = totals.get(key, 0) + amount
    return totals


_ADD_TO_METER_DAYS = _add_amounts(meter_days_t)


def add_to_meter_days(conn: Connection, amounts: dict[tuple[int, str, datetime], int]) -> None:
    """Add to every customer's usage per meter and day (this process's shard), in key order."""
    totals = meterday_amounts(amounts)
    if totals:
        shard = meter_day_shard()
        rows = [
            {"meter_code": m, "day": d, "shard": shard, "amount": totals[(m, d)]}
            for m, d in sorted(totals)
        ]
        conn.execute(_ADD_TO_METER_DAYS[conn.dialect.name], rows)


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


outbox_t = cast(Table, StripeOutboxMessage.__table__)
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


class TransactionIdsUsed(Exception):
    """PostgreSQL: an event of the batch was already stored under its transaction id (the
    batch assumed none were, or another process stored it since): nothing was written."""


# PostgreSQL: a batch's events, daily roll-ups and running totals in one statement (one
# round trip under the lock instead of three); the roll-ups in key order, as add_to_days.
# An event whose transaction id is taken is not inserted, and the count tells.
PG_ROWS = (
    f"events AS ({_PG_INSERT_EVENTS} "  # noqa: S608 - our own names
    "ON CONFLICT (customer_id, transaction_id) DO NOTHING RETURNING 1), "
    f"days AS (INSERT INTO {days_t.name} (customer_id, meter_code, starts_at, amount) "
    "SELECT * FROM unnest($14::bigint[], $15::text[], $16::timestamptz[], $17::bigint[]) "
    "ON CONFLICT (customer_id, meter_code, starts_at) "
    f"DO UPDATE SET amount = {days_t.name}.amount + excluded.amount), "
    f"meter_days AS (INSERT INTO {meter_days_t.name} (meter_code, day, shard, amount) "
    "SELECT * FROM unnest($22::text[], $23::date[], $24::int[], $25::bigint[]) "
    "ON CONFLICT (meter_code, day, shard) "
    f"DO UPDATE SET amount = {meter_days_t.name}.amount + excluded.amount)"
)
_PG_WRITE_USAGE = (
    f"WITH {PG_ROWS}, "  # noqa: S608 - our own names
    f"totals AS (UPDATE {totals_t.name} AS t "
    "SET used = v.used, credits_used = v.credits_used, updated_at = $21 "
    "FROM unnest($18::bigint[], $19::bigint[], $20::bigint[]) AS v(id, used, credits_used) "
    "WHERE t.id = v.id) "
    "SELECT count(*) FROM events"
)
assert len(_EVENT_COLUMNS) == 13, "renumber _PG_WRITE_USAGE's parameters"


def write_usage(
    conn: Connection,
    events: list[EventRow],
    day_amounts: dict[tuple[int, str, datetime], int],
    totals: list[tuple[int, int, int]],
    now: datetime,
) -> None:
    """Insert the new events, add to the daily roll-ups and set the running totals
    (`(total_id, used, credits_used)`). PostgreSQL: `TransactionIdsUsed` when an event's
    transaction id was taken (the transaction must then be rolled back)."""
    if conn.dialect.name != "postgresql":
        insert_events(conn, events)
        add_to_days(conn, day_amounts)
        add_to_meter_days(conn, day_amounts)
        for total_id, used, credits_used in totals:
            update_total(conn, total_id, used, credits_used, now)
        return
    if not (events or day_amounts or totals):
        return
    inserted = conn.exec_driver_sql(
        _PG_WRITE_USAGE, pg_usage_parameters(events, day_amounts, totals, now)
    ).scalar_one()
    if inserted != len(events):
        raise TransactionIdsUsed


def pg_usage_parameters(
    events: list[EventRow],
    day_amounts: dict[tuple[int, str, datetime], int],
    totals: Sequence[tuple[Any, ...]],
    now: datetime,
) -> tuple[Any, ...]:
    """`_PG_WRITE_USAGE`'s parameters $1 to $25 (the totals' first three fields)."""
    days = sorted(day_amounts)
    meter_days = meterday_amounts(day_amounts)
    meter_keys = sorted(meter_days)
    return (
        *(_pg_columns(events) if events else ([],) * len(_EVENT_COLUMNS)),
        [key[0] for key in days],
        [key[1] for key in days],
        [key[2] for key in days],
        [day_amounts[key] for key in days],
        [total[0] for total in totals],
        [total[1] for total in totals],
        [total[2] for total in totals],
        now,
        [key[0] for key in meter_keys],
        [key[1] for key in meter_keys],
        [meter_day_shard()] * len(meter_keys),
        [meter_days[key] for key in meter_keys],
    )


_BUMP_LOTS_HOLDS = (
    update(totals_t)
    .where(totals_t.c.id.in_(bindparam("ids", expanding=True)))
    .values(lots_holds_version=totals_t.c.lots_holds_version + 1)
)


def bump_lots_holds(conn: Connection, total_ids: list[int]) -> None:
    """Credit lots or holds of these locked slots changed in this transaction: what a usage
    batch written without locks checks (app.metering.unlocked). Every such transaction calls it."""
    if total_ids:
        conn.execute(_BUMP_LOTS_HOLDS, {"ids": sorted(set(total_ids))})


# Persisting a batch ----------------------------------------------------------------


def save(conn: Connection, state: BatchState) -> None:
    """Write what a batch's operations produced (`state.rows`, the slots' new totals and
    credit remainders, the daily roll-ups) in its transaction, resolving the public ids that
    stood for database ids not known before the inserts."""
    rows = state.rows
    now = state.now
    fresh = {row["public_id"]: row for row in rows.grants}
    for slot in state.slots.values():
        for grant_id, value in slot.grant_remaining.items():
            if isinstance(grant_id, str):  # granted and partly used within this batch
                fresh[grant_id]["remaining"] = value
    grant_ids = insert_grants(conn, rows.grants)
    if (
        rows.grants
        or rows.ledger
        or rows.reservations
        or rows.reservation_updates
        or any(slot.grant_remaining for slot in state.slots.values())
    ):
        bump_lots_holds(conn, [slot.total_id for slot in state.slots.values()])
    totals = [
        (slot.total_id, slot.state.used, slot.state.credits_used)
        for slot in state.slots.values()
        if (slot.state.used, slot.state.credits_used)
        != (slot.used_at_load, slot.credits_used_at_load)
    ]
    write_usage(conn, rows.events, day_amounts(state), totals, now)
    # Database ids are needed only where credits were consumed or a hold was committed.
    wanted = [e["usage_event_id"] for e in rows.ledger if e["usage_event_id"] is not None]
    wanted += [row.public_id for row in rows.events if row.reservation_id is not None]
    ids = event_ids(conn, wanted)
    for slot in state.slots.values():
        # Lots granted in this batch were inserted with their final remainder already.
        remaining = {
            grant_id: value
            for grant_id, value in slot.grant_remaining.items()
            if not isinstance(grant_id, str)
        }
        set_grant_remaining(conn, remaining)
    for entry in rows.ledger:
        if isinstance(entry["grant_id"], str):
            entry["grant_id"] = grant_ids[entry["grant_id"]]
        if entry["usage_event_id"] is not None:
            entry["usage_event_id"] = ids[entry["usage_event_id"]]
    insert_ledger(conn, rows.ledger)
    insert_outbox(conn, rows.outbox)
    for row in rows.reservations:
        if row["status"] == "committed":
            row["usage_event_id"] = _event_id(state, ids, row)
    insert_reservations(conn, rows.reservations)
    for public_id, values in rows.reservation_updates.items():
        if values.get("status") == "committed":
            values["usage_event_id"] = _event_id(state, ids, state.reservations[public_id])
        update_reservation(conn, public_id, values)


def _event_id(state: BatchState, ids: dict[str, int], reservation: Any) -> int | None:
    """The database id of the event a committed reservation became."""
    event = state.events.get((reservation["customer_id"], reservation["transaction_id"]))
    return ids.get(event.public_id) if event is not None else None


def day_amounts(state: BatchState) -> dict[tuple[int, str, datetime], int]:
    """The new events' amounts per (customer, meter, chart bucket)."""
    amounts: dict[tuple[int, str, datetime], int] = {}
    # Most events of a batch share their time (`now`): find each bucket once.
    buckets: dict[tuple[int, datetime], datetime] = {}
    for row in state.rows.events:
        if not row.amount:
            continue
        # An event counts in the period it arrives in, whatever its timestamp says: a
        # backdated (or future-dated) one is charted at the edge of that period, so the
        # chart of a period sums to the period's usage.
        moment = min(max(row.timestamp, row.period_start), row.created_at)
        start = buckets.get((row.customer_id, moment))
        if start is None:
            cycle = state.plans_by_id[row.customer_id].cycle
            start = buckets[(row.customer_id, moment)] = usage_day_start(moment, cycle)
        key = (row.customer_id, row.meter_code, start)
        amounts[key] = amounts.get(key, 0) + row.amount
    return amounts
