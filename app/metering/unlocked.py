"""PostgreSQL: a batch of plain usage events read and written without locks, in two statements
on the asyncpg connection itself (app.db.engine.SyncWork.on_driver).

The batch reads its customers and their slots in one statement (each slot's latest running
total with its row version `xmin`, its holds, whether any credit lot is left), decides with the
metering rules, and writes everything in one statement outside any explicit transaction, which
changes each total only if what the decision read still holds, and otherwise fails whole. No
lock is held across a round trip, and no statement goes through SQLAlchemy: the two round trips
are most of what a small batch costs (its events cost microseconds each).

What makes the check enough: every transaction that changes a slot's credit lots or holds bumps
the slot's `lots_holds_version` (batch_repository.bump_lots_holds: `save`, app.metering.guests),
so nothing the decision read can change without the total's row changing. A batch whose events
were all accepted adds its usage to the total as it is then, provided the lots and holds are as
read and the sum stays within what was available (so batches of several processes do not fail
each other); one that refused any is written only if the total is the very row version read.

Anything else (a guest, a credit lot left, a slot whose current period has no total yet, a
driver error) is `NeedsLocks`: the writer runs the batch the locked way instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from app.catalog.models import Catalog
from app.customers.statuses import GUEST_PLAN
from app.metering import rules
from app.metering.batch_repository import (
    PG_ROWS,
    TransactionIdsUsed,
    day_amounts,
    events_t,
    grants_t,
    pg_usage_parameters,
    reservations_t,
    totals_t,
)
from app.metering.ops import RecordUsage
from app.metering.repository import customers_t, plan_row, subscriptions_t
from app.metering.state import BatchState, CustomerPlan, EventRow, Row


class NeedsLocks(Exception):
    """The batch cannot be written without locks (a credit lot, a guest, a total not created
    yet, a ledger entry or Stripe call to write): nothing was written."""


class WriteConflict(Exception):
    """Another write changed one of the batch's running totals since it read them: nothing was
    written, and the batch may run again."""


# Each (customer, meter) the batch names, by customer or by subscription external id, with its
# customer's plan and its latest running total (the current period's, unless a new period has
# no total yet: the writer's Python checks the period).
_PLAN_COLUMNS = (
    "c.id, c.external_id, c.stripe_customer_id, s.external_id AS sub_external_id, s.plan_slug, "
    "s.status, s.stripe_subscription_id, s.current_period_start, s.current_period_end, "
    "s.interval, c.deleted_at"
)
_READ = f"""
WITH wanted AS (
    SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::text[])
        AS w(external_id, sub_external_id, meter_code)
), plans AS (
    SELECT w.meter_code, {_PLAN_COLUMNS}
    FROM wanted w
    JOIN {customers_t.name} c ON c.external_id = w.external_id
    JOIN {subscriptions_t.name} s ON s.customer_id = c.id
    WHERE w.sub_external_id IS NULL
    UNION ALL
    SELECT w.meter_code, {_PLAN_COLUMNS}
    FROM wanted w
    JOIN {subscriptions_t.name} s ON s.external_id = w.sub_external_id
    JOIN {customers_t.name} c ON c.id = s.customer_id
)
SELECT p.*, t.id AS total_id, t.period_start, t.used, t.credits_used, t.version,
    t.lots_holds_version,
    (SELECT coalesce(sum(r.amount), 0) FROM {reservations_t.name} r
     WHERE r.customer_id = p.id AND r.meter_code = p.meter_code
       AND r.status = 'held' AND r.expires_at > $4) AS held,
    EXISTS (SELECT 1 FROM {grants_t.name} g
     WHERE g.customer_id = p.id AND g.meter_code = p.meter_code AND g.remaining > 0) AS has_lots
FROM plans p
LEFT JOIN LATERAL (
    SELECT id, period_start, used, credits_used, xmin::text AS version, lots_holds_version
    FROM {totals_t.name}
    WHERE customer_id = p.id AND meter_code = p.meter_code
    ORDER BY period_start DESC LIMIT 1
) t ON true
"""  # noqa: S608 - our own names

# Whether any of these (customer id, transaction id) is stored.
_ANY_STORED = f"""
SELECT EXISTS (SELECT 1 FROM {events_t.name}
    WHERE (customer_id, transaction_id) IN (SELECT * FROM unnest($1::bigint[], $2::text[])))
"""  # noqa: S608 - our own names

# The usage write (batch_repository.PG_ROWS), where the totals' update is the first part; when
# a total's condition fails, or an event's transaction id is taken, the statement fails (a cast
# of a text that is no number: nothing of it is written). Per total either (version read, used,
# credits_used): written only if still that row version; or (NULL, usage added, ceiling):
# added if the lots and holds are unchanged and the new total stays within the ceiling (NULL:
# unlimited).
_CONFLICT = "usage write conflict"
_TAKEN = "usage transaction id taken"
_WRITE = (
    f"WITH totals AS (UPDATE {totals_t.name} AS t "  # noqa: S608 - our own names
    "SET used = CASE WHEN v.version IS NULL THEN t.used + v.used ELSE v.used END, "
    "credits_used = CASE WHEN v.version IS NULL THEN t.credits_used ELSE v.credits_used END, "
    "updated_at = $21 "
    "FROM unnest($18::bigint[], $19::bigint[], $20::bigint[], $26::text[], $29::bigint[]) "
    "AS v(id, used, credits_used, version, lots_holds) "
    "WHERE t.id = v.id AND CASE WHEN v.version IS NULL "
    "THEN t.lots_holds_version = v.lots_holds "
    "AND (v.credits_used IS NULL OR t.used + v.used <= v.credits_used) "
    "ELSE t.xmin = v.version::xid END RETURNING 1), "
    f"{PG_ROWS} "
    "SELECT CASE WHEN (SELECT count(*) FROM totals) = $27 "
    "AND (SELECT count(*) FROM events) = $28 THEN 0 "
    "ELSE ((CASE WHEN (SELECT count(*) FROM totals) = $27 "
    f"THEN '{_TAKEN} ' ELSE '{_CONFLICT} ' END) || (SELECT count(*) FROM events))::int END"
)

# The driver's own failures (connection lost, a statement cancelled): the locked way, on a
# connection of the pool, handles them as it handles any database error. A connection the
# server dropped while a statement was being sent can leave asyncpg's protocol in a state it
# refuses to leave (InternalClientError, "cannot switch to state ..."), not an InterfaceError.
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


async def write_batch(
    conn: asyncpg.Connection,
    catalog: Catalog,
    ops: list[RecordUsage],
    upgrade_url: str,
    now: datetime,
) -> list[rules.Outcome]:
    """Apply `ops` and write what they produced, without locks; committed on return, each
    operation's outcome in order. `NeedsLocks` or `WriteConflict`: nothing was written.
    `TransactionIdsUsed`: an event's transaction id was stored before (this batch assumes
    none was): nothing was written."""
    try:
        state = await _load(conn, catalog, ops, upgrade_url, now)
        outcomes = rules.apply_all(state, ops)
        refused = rules.refused_events(state, ops, outcomes)
        if refused and await conn.fetchval(
            _ANY_STORED, [key[0] for key in refused], [key[1] for key in refused]
        ):
            raise TransactionIdsUsed
        totals = unlocked_totals(state, any(error for _, error in outcomes))
        await write_usage(conn, state.rows.events, day_amounts(state), totals, now)
    except _DRIVER_ERRORS as exc:
        raise NeedsLocks from exc
    return outcomes


async def _load(
    conn: asyncpg.Connection,
    catalog: Catalog,
    ops: list[RecordUsage],
    upgrade_url: str,
    now: datetime,
) -> BatchState:
    """The batch's customers and slots as `writer.load` finds them locked, read in one
    statement; `NeedsLocks` where only the locked way can go on."""
    wanted = {
        (
            None if op.customer.external_subscription_id else op.customer.external_customer_id,
            op.customer.external_subscription_id,
            op.meter_code,
        )
        for op in ops
    }
    rows = await conn.fetch(
        _READ,
        [key[0] for key in wanted],
        [key[1] for key in wanted],
        [key[2] for key in wanted],
        now,
    )
    state = BatchState(now, upgrade_url)
    slots: list[tuple[CustomerPlan, Any]] = []
    for record in rows:
        row: Any = Row(dict(record))
        plan = plan_row(row)
        if plan.plan_slug == GUEST_PLAN:
            raise NeedsLocks  # a guest's conversion is excluded by a lock (writer.load)
        state.add_plans([plan])
        if catalog.meter(row.meter_code) is not None:
            slots.append((plan, row))
    # In key order, as the locked way takes its locks: the write updates the totals in it.
    slots.sort(key=lambda slot: (slot[0].id, slot[1].meter_code))
    for plan, row in slots:
        quota, period = rules.slot_period(catalog, plan, row.meter_code, now)
        if row.total_id is None or row.period_start != period.start or row.has_lots:
            raise NeedsLocks  # the locked way creates the total, or draws on the lots
        total = Row(
            {
                "id": row.total_id,
                "used": row.used,
                "credits_used": row.credits_used,
                "version": row.version,
                "lots_holds_version": row.lots_holds_version,
            }
        )
        rules.open_slot(state, plan, row.meter_code, quota, period, total, [], [], int(row.held))
    return state


def unlocked_totals(
    state: BatchState, refused: bool
) -> list[tuple[int, int, int | None, str | None, int]]:
    """What `write_usage` writes to each running total the batch changed. `refused`: an
    operation was refused, from the totals as read, so only those very rows may be written."""
    rows = state.rows
    if rows.grants or rows.ledger or rows.outbox or rows.reservations or rows.reservation_updates:
        raise NeedsLocks
    totals: list[tuple[int, int, int | None, str | None, int]] = []
    for slot in state.slots.values():
        if slot.grant_remaining:
            raise NeedsLocks
        used, credits_used = slot.state.used, slot.state.credits_used
        if (used, credits_used) == (slot.used_at_load, slot.credits_used_at_load):
            continue
        assert slot.version is not None and slot.lots_holds is not None, "a slot read locked"
        if refused or credits_used != slot.credits_used_at_load:
            totals.append((slot.total_id, used, credits_used, slot.version, slot.lots_holds))
            continue
        # Every event accepted with no credits (there are none, `_load`): as long as the lots
        # and holds are as read, any total up to this one would have accepted them too.
        limit = slot.state.limit
        ceiling = None if limit is None else limit + credits_used - slot.state.held
        totals.append((slot.total_id, used - slot.used_at_load, ceiling, None, slot.lots_holds))
    return totals


async def write_usage(
    conn: asyncpg.Connection,
    events: list[EventRow],
    days: dict[tuple[int, str, datetime], int],
    totals: list[tuple[int, int, int | None, str | None, int]],
    now: datetime,
) -> None:
    """The events, daily roll-ups and running totals in one statement of its own (autocommit).
    Per total `(total_id, used, credits_used, version read, lots_holds_version read)`: written
    only if still that row version; or `(total_id, usage added, ceiling or None, None,
    lots_holds_version read)`: the usage added to the total as it is, if the lots and holds are
    unchanged and it stays within the ceiling. Otherwise nothing is written and `WriteConflict`
    raised; `TransactionIdsUsed` if an event's transaction id was taken."""
    if not (events or totals):
        return
    try:
        await conn.execute(
            _WRITE,
            *pg_usage_parameters(events, days, totals, now),
            [total[3] for total in totals],
            len(totals),
            len(events),
            [total[4] for total in totals],
        )
    except asyncpg.InvalidTextRepresentationError as exc:
        if _CONFLICT in str(exc):
            raise WriteConflict from exc
        if _TAKEN in str(exc):
            raise TransactionIdsUsed from exc
        raise


__all__ = ["NeedsLocks", "WriteConflict", "unlocked_totals", "write_batch", "write_usage"]
