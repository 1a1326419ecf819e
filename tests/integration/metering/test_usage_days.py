"""The writer keeps daily usage roll-ups in the same transaction as the events, so the usage
charts read a few rows per day instead of summing raw events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from app.catalog.loader import parse_catalog
from app.customers.models import Customer, Subscription
from app.customers.service import CustomerInput, CustomerService
from app.metering import batch_repository
from app.metering.models import UsageDay, UsageEvent, UsageMeterDay
from app.metering.ops import CustomerRef, RecordUsage, fingerprint
from app.metering.writer import apply_batch

CATALOG = parse_catalog(
    {
        "meters": {
            "calls": {"name": "Calls", "aggregation": "sum", "field_name": "n"},
            "logins": {"name": "Logins"},
        },
        "plans": {
            "free": {
                "name": "Free",
                "default": True,
                "prices": {"monthly": {"amount": 0}},
                "quotas": {
                    "calls": {"included": "unlimited", "reset": "billing_period"},
                    "logins": {"included": "unlimited", "reset": "day"},
                },
            },
        },
    }
)
NOW = datetime(2026, 11, 22, 15, 30, tzinfo=UTC)
REF = CustomerRef(external_customer_id="days")


def _use(tx: str, n: int, at: datetime | None, code: str = "calls") -> RecordUsage:
    return RecordUsage(REF, code, tx, n, at, {"n": n}, fingerprint({"tx": tx}))


async def _days(session) -> dict[tuple[str, datetime], int]:
    customer_id = await session.scalar(select(Customer.id).where(Customer.external_id == "days"))
    query = select(UsageDay).where(UsageDay.customer_id == customer_id)
    rows = (await session.execute(query)).scalars().all()
    return {(row.meter_code, row.starts_at): row.amount for row in rows}


async def test_events_add_up_per_meter_and_utc_day_across_batches(engine, session) -> None:
    await CustomerService(session, CATALOG).upsert(CustomerInput(external_id="days"))
    await session.commit()
    yesterday = NOW - timedelta(days=1)
    first = [_use("a", 3, None), _use("b", 4, NOW - timedelta(hours=15)), _use("c", 5, yesterday)]
    await apply_batch(engine, CATALOG, [*first, _use("l1", 1, None, "logins")], "u", now=NOW)
    # A second batch adds to the same rows; a retried event adds nothing.
    await apply_batch(engine, CATALOG, [_use("d", 6, None), _use("a", 3, None)], "u", now=NOW)
    # An event of amount 0 is recorded but makes no roll-up row.
    await apply_batch(engine, CATALOG, [_use("z", 0, NOW - timedelta(days=5))], "u", now=NOW)

    today = datetime(2026, 11, 22, tzinfo=UTC)
    assert await _days(session) == {
        ("calls", today): 3 + 4 + 6,
        ("calls", today - timedelta(days=1)): 5,
        ("logins", today): 1,
    }
    customer_id = await session.scalar(select(Customer.id).where(Customer.external_id == "days"))
    events_total = await session.scalar(
        select(func.sum(UsageEvent.amount)).where(UsageEvent.customer_id == customer_id)
    )
    days_total = await session.scalar(
        select(func.sum(UsageDay.amount)).where(UsageDay.customer_id == customer_id)
    )
    assert events_total == days_total == 19


async def test_the_day_a_billing_period_starts_is_split_at_its_start(engine, session) -> None:
    """Usage that arrived before the period's start that day belongs to the previous period's
    chart; what arrives after it, to the new period's, whatever timestamp it carries."""
    await CustomerService(session, CATALOG).upsert(CustomerInput(external_id="days"))
    period_start = datetime(2026, 11, 22, 9, 15, tzinfo=UTC)
    customer_id = await session.scalar(select(Customer.id).where(Customer.external_id == "days"))
    await session.execute(
        update(Subscription)
        .where(Subscription.customer_id == customer_id)
        .values(
            current_period_start=period_start,
            current_period_end=datetime(2026, 12, 22, 9, 15, tzinfo=UTC),
            interval="month",
        )
    )
    await session.commit()
    before = period_start - timedelta(minutes=1)
    await apply_batch(engine, CATALOG, [_use("before", 2, None)], "u", now=before)
    events = [
        _use("at", 3, period_start),
        _use("after", 4, None),  # NOW, 15:30
        _use("late", 6, before),  # sent late: counted in the new period
        _use("next-day", 5, period_start + timedelta(days=1)),  # dated ahead: charted now
    ]
    await apply_batch(engine, CATALOG, events, "u", now=NOW)

    midnight = datetime(2026, 11, 22, tzinfo=UTC)
    assert await _days(session) == {
        ("calls", midnight): 2,
        ("calls", period_start): 3 + 4 + 6 + 5,
    }


async def test_events_dated_outside_their_period_are_charted_inside_it(engine, session) -> None:
    """An event counts in the period it arrives in: one dated 1970 or 2100 is charted at that
    period's edges, so the chart and the balance agree."""
    await CustomerService(session, CATALOG).upsert(CustomerInput(external_id="days"))
    await session.commit()
    events = [
        _use("old", 1, datetime(1970, 1, 1, tzinfo=UTC)),
        _use("new", 2, datetime(2100, 1, 1, tzinfo=UTC)),
        _use("old-login", 4, datetime(1970, 1, 1, tzinfo=UTC), "logins"),
    ]
    await apply_batch(engine, CATALOG, events, "u", now=NOW)
    month, today = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC)
    assert await _days(session) == {
        ("calls", month): 1,
        ("calls", today): 2,
        ("logins", today): 4,
    }


async def test_every_customers_usage_per_meter_and_day_adds_up_across_processes(
    engine, session, monkeypatch
) -> None:
    """`usage_meter_days` (the admin overview's chart) holds, per meter and UTC day, the sum of
    every customer's daily roll-ups; each process adds to its own shard."""
    customers = CustomerService(session, CATALOG)
    await customers.upsert(CustomerInput(external_id="days"))
    await customers.upsert(CustomerInput(external_id="other"))
    await session.commit()
    other = CustomerRef(external_customer_id="other")
    yesterday = NOW - timedelta(days=1)
    monkeypatch.setattr(batch_repository, "meter_day_shard", lambda: 3)
    await apply_batch(
        engine,
        CATALOG,
        [_use("a", 3, None), _use("b", 5, yesterday), _use("l", 1, None, "logins")],
        "u",
        now=NOW,
    )
    monkeypatch.setattr(batch_repository, "meter_day_shard", lambda: 11)  # another process
    later = [RecordUsage(other, "calls", "o", 7, None, {"n": 7}, fingerprint({"tx": "o"}))]
    await apply_batch(engine, CATALOG, [*later, _use("a", 3, None)], "u", now=NOW)  # a retried
    rows = (await session.execute(select(UsageMeterDay))).scalars().all()
    by_shard = {(r.meter_code, r.day, r.shard): r.amount for r in rows}
    today = NOW.date()
    assert by_shard == {
        ("calls", today, 3): 3,
        ("calls", today - timedelta(days=1), 3): 5,
        ("logins", today, 3): 1,
        ("calls", today, 11): 7,
    }
    days = (await session.execute(select(UsageDay))).scalars().all()
    summed: dict[tuple[str, object], int] = {}
    for row in days:
        key = (row.meter_code, row.starts_at.astimezone(UTC).date())
        summed[key] = summed.get(key, 0) + row.amount
    totals: dict[tuple[str, object], int] = {}
    for (meter, day, _shard), amount in by_shard.items():
        totals[(meter, day)] = totals.get((meter, day), 0) + amount
    assert totals == summed
