"""Archiving raw usage events (issue 18, item 6): events created before the cutoff leave the
database for gzip files of JSON lines; balances, roll-ups, totals and invoices stay as they
were; a second run finds nothing; on SQLite and PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.billing.models import Invoice
from app.catalog.loader import parse_catalog
from app.cli import main
from app.customers.models import Customer
from app.customers.service import CustomerInput, CustomerService
from app.db.engine import SyncWork, create_session_factory
from app.metering.archive import archive_usage, parse_before, retention_cutoff
from app.metering.models import UsageDay, UsageEvent, UsageMeterDay, UsageTotal
from app.metering.ops import CustomerRef, RecordUsage, fingerprint
from app.metering.service import read_balances
from app.metering.writer import apply_batch

CATALOG = parse_catalog(
    {
        "meters": {"calls": {"name": "Calls", "aggregation": "sum", "field_name": "n"}},
        "plans": {
            "free": {
                "name": "Free",
                "default": True,
                "prices": {"monthly": {"amount": 0}},
                "quotas": {"calls": {"included": 1000, "reset": "billing_period"}},
            },
        },
    }
)
REF = CustomerRef(external_customer_id="arch")
OLD = datetime(2026, 1, 10, 12, tzinfo=UTC)
NOW = datetime(2026, 3, 5, 9, tzinfo=UTC)


async def _start(session: AsyncSession) -> None:
    """The customer, in a table of events holding none of another test's (a server process
    of an earlier test may have left some, dated now: the archive scans by id)."""
    await session.execute(delete(UsageEvent))
    await CustomerService(session, CATALOG).upsert(CustomerInput(external_id="arch"))
    await session.commit()


def _use(tx: str, n: int) -> RecordUsage:
    return RecordUsage(REF, "calls", tx, n, None, {"n": n}, fingerprint({"tx": tx}))


async def _state(engine: AsyncEngine, session: AsyncSession) -> dict[str, object]:
    """Everything a balance, a chart or an invoice is read from."""
    await session.commit()  # a fresh snapshot
    customer_id = await session.scalar(select(Customer.id).where(Customer.external_id == "arch"))
    work = SyncWork(engine)
    try:
        found = await work.read(read_balances, CATALOG, NOW, None, customer_id)
    finally:
        work.dispose()
    assert found is not None

    async def rows(model: type, *order: object) -> list[tuple[object, ...]]:
        result = await session.execute(select(model).order_by(*order))
        return [
            tuple(getattr(row, c.key) for c in model.__table__.columns)  # type: ignore[attr-defined]
            for row in result.scalars()
        ]

    return {
        "balances": [(b.code, b.used, b.available) for b in found[1]],
        "totals": await rows(UsageTotal, UsageTotal.id),
        "days": await rows(UsageDay, UsageDay.starts_at, UsageDay.meter_code),
        "meter_days": await rows(UsageMeterDay, UsageMeterDay.day, UsageMeterDay.shard),
        "invoices": await rows(Invoice, Invoice.id),
    }


async def _stored(session: AsyncSession) -> list[str]:
    await session.commit()
    query = select(UsageEvent.transaction_id).order_by(UsageEvent.id)
    return list(await session.scalars(query))


def _archived(files: list[Path]) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    for path in files:
        with gzip.open(path, "rt") as handle:
            lines += [json.loads(line) for line in handle]
    return lines


async def test_old_events_leave_and_nothing_else_changes(
    engine: AsyncEngine, session: AsyncSession, tmp_path: Path
) -> None:
    await _start(session)
    await apply_batch(engine, CATALOG, [_use("jan-a", 1), _use("jan-b", 2)], "u", now=OLD)
    await apply_batch(engine, CATALOG, [_use("jan-c", 3)], "u", now=OLD)
    await apply_batch(engine, CATALOG, [_use("mar-a", 4), _use("mar-b", 5)], "u", now=NOW)
    customer_id = await session.scalar(select(Customer.id).where(Customer.external_id == "arch"))
    session.add(
        Invoice(
            customer_id=customer_id,
            stripe_invoice_id="in_arch",
            status="paid",
            currency="usd",
            total=900,
            amount_due=900,
            amount_paid=900,
            created_at=OLD,
        )
    )
    await session.commit()
    before = await _state(engine, session)
    assert before["balances"] == [("calls", 9, 991)]

    sessions = create_session_factory(engine)
    done = await archive_usage(sessions, parse_before("2026-02-01"), tmp_path)

    assert done.events == 3 and len(done.files) == 1
    assert done.files[0].name.startswith("usage_events-") and done.files[0].exists()
    archived = _archived(done.files)
    assert [line["transaction_id"] for line in archived] == ["jan-a", "jan-b", "jan-c"]
    assert archived[0]["properties"] == {"n": 1} and archived[0]["amount"] == 1
    assert await _stored(session) == ["mar-a", "mar-b"]
    assert await _state(engine, session) == before  # balances, roll-ups, invoices

    again = await archive_usage(sessions, parse_before("2026-02-01"), tmp_path)
    assert again.events == 0 and again.files == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [done.files[0].name]
    assert await _state(engine, session) == before


async def test_events_go_in_chunks_oldest_first(
    engine: AsyncEngine, session: AsyncSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.metering.archive.CHUNK", 2)
    await _start(session)
    await apply_batch(engine, CATALOG, [_use(f"old-{i}", 1) for i in range(5)], "u", now=OLD)
    await apply_batch(engine, CATALOG, [_use("new", 1)], "u", now=NOW)
    done = await archive_usage(create_session_factory(engine), parse_before("2026-02-01"), tmp_path)
    assert done.events == 5 and len(done.files) == 3
    assert [line["transaction_id"] for line in _archived(done.files)] == [
        f"old-{i}" for i in range(5)
    ]
    assert await _stored(session) == ["new"]
    count = await session.scalar(select(func.count()).select_from(UsageEvent))
    assert count == 1


def test_the_retention_cutoff_is_whole_months() -> None:
    assert retention_cutoff(0, NOW) is None
    assert retention_cutoff(3, NOW) == datetime(2025, 12, 1, tzinfo=UTC)
    assert parse_before("2026-01-01") == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a date"):
        parse_before("January")


def test_the_command_needs_a_cutoff(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    monkeypatch.delenv("USAGE_RETENTION_MONTHS", raising=False)
    result = CliRunner().invoke(main, ["archive-usage"])
    assert result.exit_code != 0 and "USAGE_RETENTION_MONTHS" in result.output
    result = CliRunner().invoke(main, ["archive-usage", "--before", "soon"])
    assert result.exit_code != 0 and "not a date" in result.output
