"""Property tests of the balance arithmetic through the real writer and database.

Any sequence of grants, events, reservations, commits, releases and period rollovers keeps:
used ≤ included + credits consumed in every period, no negative balance, every credit
grant's ledger summing to its remainder, and the running totals equal to the raw events.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from app.catalog.loader import parse_catalog
from app.customers.service import CustomerInput, CustomerService
from app.db.engine import create_engine, create_session_factory
from app.db.models import Base
from app.lib.errors import DomainError
from app.metering.models import CreditGrant, CreditLedgerEntry, UsageEvent, UsageTotal
from app.metering.ops import (
    CommitReservation,
    CustomerRef,
    GrantCredits,
    RecordUsage,
    ReleaseReservation,
    Reserve,
    fingerprint,
)
from app.metering.writer import apply_batch

LIMIT = 10
CATALOG = parse_catalog(
    {
        "meters": {"units": {"name": "Units", "aggregation": "sum", "field_name": "n"}},
        "plans": {
            "free": {
                "name": "Free",
                "default": True,
                "prices": {"monthly": {"amount": 0}},
                "quotas": {"units": {"included": LIMIT, "reset": "day"}},
            }
        },
    }
)
REF = CustomerRef(external_customer_id="prop")
START = datetime(2026, 3, 1, 9, tzinfo=UTC)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("event"), st.integers(0, 6)),
        st.tuples(st.just("grant"), st.integers(1, 8), st.one_of(st.none(), st.integers(1, 72))),
        st.tuples(st.just("reserve"), st.integers(1, 6), st.integers(1, 5)),
        st.tuples(st.just("commit"), st.integers(0, 20), st.integers(0, 6)),
        st.tuples(st.just("release"), st.integers(0, 20)),
        st.tuples(st.just("advance"), st.integers(1, 30)),
        st.tuples(st.just("retry"), st.integers(0, 50)),
    ),
    min_size=1,
    max_size=40,
)


async def _reset(engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                await conn.execute(text(f"DELETE FROM {name}"))


async def _scenario(database_url: str, plan: list[tuple]) -> None:
    engine = create_engine(database_url)
    try:
        await _reset(engine)
        async with create_session_factory(engine)() as session:
            await CustomerService(session, CATALOG).upsert(CustomerInput(external_id="prop"))
        now = START
        reservations: list[str] = []
        sent: list[RecordUsage] = []
        for index, step in enumerate(plan):
            kind = step[0]
            op = None
            if kind == "event":
                payload = {"n": step[1]}
                op = RecordUsage(
                    REF, "units", f"e{index}", step[1], None, payload, fingerprint(payload)
                )
                sent.append(op)
            elif kind == "retry" and sent:
                op = sent[step[1] % len(sent)]
            elif kind == "grant":
                expires = now + timedelta(hours=step[2]) if step[2] else None
                op = GrantCredits(
                    REF,
                    "units",
                    step[1],
                    "api",
                    "",
                    f"g{index}",
                    expires,
                    fingerprint({"i": index}),
                )
            elif kind == "reserve":
                op = Reserve(
                    REF, "units", step[1], f"r{index}", step[2] * 3600, fingerprint({"i": index})
                )
            elif kind == "commit" and reservations:
                op = CommitReservation(reservations[step[1] % len(reservations)], step[2])
            elif kind == "release" and reservations:
                op = ReleaseReservation(reservations[step[1] % len(reservations)])
            elif kind == "advance":
                now += timedelta(hours=step[1])
            if op is None:
                continue
            [(result, error)] = await apply_batch(engine, CATALOG, [op], "http://x/upgrade", now)
            assert error is None or isinstance(error, DomainError)
            if error is not None:
                assert error.status_code in (402, 404, 409, 422), error
            if isinstance(op, Reserve) and result is not None:
                reservations.append(result.public_id)
        await _check(engine)
    finally:
        await _reset(engine)  # the next test starts from empty tables, as after `engine`
        await engine.dispose()


async def _check(engine) -> None:
    async with engine.connect() as conn:
        totals = (await conn.execute(select(UsageTotal.__table__))).all()
        for total in totals:
            assert total.used >= 0 and total.credits_used >= 0
            assert total.used - total.credits_used <= LIMIT
            assert total.used <= LIMIT + total.credits_used
            events = (
                await conn.execute(
                    select(
                        func.coalesce(func.sum(UsageEvent.amount), 0),
                        func.coalesce(func.sum(UsageEvent.credits_amount), 0),
                    ).where(
                        UsageEvent.customer_id == total.customer_id,
                        UsageEvent.period_start == total.period_start,
                    )
                )
            ).one()
            assert (events[0], events[1]) == (total.used, total.credits_used)
        grants = (await conn.execute(select(CreditGrant.__table__))).all()
        for grant in grants:
            assert 0 <= grant.remaining <= grant.amount
            ledger = await conn.scalar(
                select(func.coalesce(func.sum(CreditLedgerEntry.amount), 0)).where(
                    CreditLedgerEntry.grant_id == grant.id
                )
            )
            assert ledger == grant.remaining
        consumed = await conn.scalar(
            select(func.coalesce(func.sum(CreditLedgerEntry.amount), 0)).where(
                CreditLedgerEntry.kind == "consume"
            )
        )
        assert -consumed == sum(t.credits_used for t in totals)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=steps)
def test_any_sequence_keeps_the_invariants(database_url: str, plan: list[tuple]) -> None:
    asyncio.run(_scenario(database_url, plan))
