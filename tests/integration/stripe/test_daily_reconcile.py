"""The daily reconcile (issue 20, item 7): run once a day at RECONCILE_AT by whichever worker
claims the day first, its outcome in the audit log, the last run on the admin overview.

The clock is passed in (`run_once(now)`): nothing waits for 02:00."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, time
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.admin.daily_reconcile import (
    FINISHED,
    STARTED,
    ReconcileWorker,
    claim_day,
    reconcile_all,
)
from app.admin.models import AuditLog
from app.catalog.models import Catalog
from app.composition import Parts
from app.config import Settings
from app.db.engine import create_session_factory
from app.metering.writer import UsageWriter
from app.stripe.gateway import StripeGateway, StripeGatewayError
from tests.conftest import sibling_client
from tests.factories import log_in, make_admin
from tests.integration.stripe.conftest import (
    Emulator,
    Services,
    customer_of,
    login_new_user,
    post_form,
)

AT = time(2, 0, tzinfo=UTC)
DAY_RUN = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


@pytest.fixture
async def writer(engine: AsyncEngine, catalog: Catalog) -> Any:
    writer = UsageWriter(engine, catalog, upgrade_url="http://testserver.local/billing/upgrade")
    yield writer
    await writer.close()


def make_worker(
    engine: AsyncEngine, writer: UsageWriter, catalog: Catalog, gateway: StripeGateway
) -> ReconcileWorker:
    """A worker as a process builds it (app.composition), with its own sessions."""

    def services(session: AsyncSession) -> tuple[Any, Any]:
        built = Services(session, writer, catalog, gateway)
        return built.billing, built.billing.mirror

    return ReconcileWorker(create_session_factory(engine), services, AT)


async def entries(session: AsyncSession, action: str) -> list[AuditLog]:
    await session.commit()
    query = select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
    return list(await session.scalars(query.execution_options(populate_existing=True)))


async def drifted_customer(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator, email: str
) -> None:
    """A customer who subscribed at Stripe while no webhook reached us: we still say Free."""
    await login_new_user(client, email)
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    assert emulator.pay(response.headers["location"]).status_code == 303
    _, sub = await customer_of(session, email)
    assert sub.plan_slug == "free"


async def test_the_day_runs_once_at_the_hour_and_records_the_drift(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    engine: AsyncEngine,
    writer: UsageWriter,
    catalog: Catalog,
    gateway: StripeGateway,
) -> None:
    await drifted_customer(client, session, emulator, "nightly@example.com")
    worker = make_worker(engine, writer, catalog, gateway)

    # Before the hour: nothing runs, nothing is recorded.
    assert await worker.run_once(datetime(2026, 12, 4, 1, 59, 59, tzinfo=UTC)) is None
    assert await entries(session, STARTED) == []

    outcome = await worker.run_once(DAY_RUN)
    assert outcome is not None
    assert outcome.details["status"] == "drift"
    assert outcome.details["customers"] == 1
    assert any("subscription differs" in line for line in outcome.details["drift"])
    assert outcome.details["errors"] == []
    assert outcome.target_id == "2026-12-04"
    _, sub = await customer_of(session, "nightly@example.com")
    assert (sub.plan_slug, sub.status) == ("pro", "trialing")  # repaired

    # Later the same day (this process, or another one): not again.
    assert await worker.run_once(datetime(2026, 12, 4, 23, 59, tzinfo=UTC)) is None
    other = make_worker(engine, writer, catalog, gateway)
    assert await other.run_once(datetime(2026, 12, 4, 12, 0, tzinfo=UTC)) is None
    assert len(await entries(session, STARTED)) == 1
    assert len(await entries(session, FINISHED)) == 1

    # The next day runs again, now with nothing to repair.
    assert await worker.run_once(datetime(2026, 12, 5, 1, 0, tzinfo=UTC)) is None
    following = await worker.run_once(datetime(2026, 12, 5, 2, 0, 30, tzinfo=UTC))
    assert following is not None and following.details["status"] == "ok"
    assert following.details["drift"] == []
    assert [e.target_id for e in await entries(session, FINISHED)] == ["2026-12-04", "2026-12-05"]


async def test_two_workers_at_once_run_the_day_once(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    engine: AsyncEngine,
    writer: UsageWriter,
    catalog: Catalog,
    gateway: StripeGateway,
) -> None:
    """Two processes' workers wake at 02:00 together (each with its own sessions): one claims
    the day and reconciles, the other does nothing (SQLite, and PostgreSQL with
    TEST_DATABASE_URL)."""
    await drifted_customer(client, session, emulator, "twice@example.com")
    first = make_worker(engine, writer, catalog, gateway)
    second = make_worker(engine, writer, catalog, gateway)
    outcomes = await asyncio.gather(first.run_once(DAY_RUN), second.run_once(DAY_RUN))
    assert sum(o is not None for o in outcomes) == 1
    assert len(await entries(session, STARTED)) == 1
    [finished] = await entries(session, FINISHED)
    assert finished.details["drift_count"] >= 1


async def test_claims_of_one_day_race_to_one_winner(engine: AsyncEngine) -> None:
    """The claim itself, eight at once on their own connections: exactly one wins."""
    sessions = create_session_factory(engine)

    async def claim() -> bool:
        async with sessions() as session:
            return await claim_day(session, DAY_RUN.date(), AT, DAY_RUN)

    results = await asyncio.gather(*(claim() for _ in range(8)))
    assert results.count(True) == 1
    async with sessions() as session:
        assert len(await entries(session, STARTED)) == 1


class FailingMirror:
    async def reconcile_customer(self, customer: Any, *, repair: bool = True) -> list[str]:
        raise StripeGatewayError("Stripe is unreachable.")


async def test_errors_are_recorded_and_the_walk_goes_on(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    engine: AsyncEngine,
    writer: UsageWriter,
    catalog: Catalog,
    gateway: StripeGateway,
) -> None:
    await drifted_customer(client, session, emulator, "down@example.com")

    def services(session: AsyncSession) -> tuple[Any, Any]:
        return Services(session, writer, catalog, gateway).billing, FailingMirror()

    worker = ReconcileWorker(create_session_factory(engine), services, AT)
    outcome = await worker.run_once(DAY_RUN)
    assert outcome is not None
    assert outcome.details["status"] == "errors"
    customer, _ = await customer_of(session, "down@example.com")
    assert outcome.details["errors"] == [f"{customer.external_id}: Stripe is unreachable."]
    assert "1 error(s)" in outcome.reason


async def test_the_cli_and_the_worker_share_the_walk(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    writer: UsageWriter,
    catalog: Catalog,
    gateway: StripeGateway,
) -> None:
    """`reconcile --dry-run` (repair=False) reports without changing anything."""
    await drifted_customer(client, session, emulator, "dry@example.com")
    built = Services(session, writer, catalog, gateway)
    result = await reconcile_all(session, built.billing, built.billing.mirror, repair=False)
    assert result.customers == 1 and result.drift and not result.errors
    _, sub = await customer_of(session, "dry@example.com")
    assert sub.plan_slug == "free"


async def test_the_overview_shows_the_last_run_and_its_drift(
    app: Litestar,
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    engine: AsyncEngine,
    writer: UsageWriter,
    catalog: Catalog,
    gateway: StripeGateway,
) -> None:
    admin = await make_admin(session, catalog, password="admin password for tests")
    admin_client = sibling_client(client)
    await log_in(admin_client, admin.id)
    app.state.pop("admin_overview", None)  # the process's cached overview
    page = await admin_client.get("/admin/billing/")
    assert 'data-testid="reconcile-never"' in page.text

    await drifted_customer(client, session, emulator, "shown@example.com")
    await make_worker(engine, writer, catalog, gateway).run_once(DAY_RUN)
    app.state.pop("admin_overview", None)
    page = await admin_client.get("/admin/billing/")
    assert page.status_code == 200
    block = page.text.split('data-testid="daily-reconcile"', 1)[1].split("</section>", 1)[0]
    assert "2026-12-04" in block and "drift repaired" in block
    assert "subscription differs from Stripe" in block
    assert "/admin/billing/audit?action=reconcile.finished&amp;q=2026-12-04" in block

    details = await admin_client.get(
        "/admin/billing/audit", params={"action": FINISHED, "q": "2026-12-04"}
    )
    assert details.status_code == 200
    assert "subscription differs from Stripe" in details.text
    assert "Daily reconcile finished" in details.text


async def test_the_process_runs_the_worker_unless_reconcile_at_is_off(
    settings: Settings, catalog: Catalog
) -> None:
    on = Parts.build(settings, catalog)
    off = Parts.build(replace(settings, reconcile_at=None), catalog)
    try:
        workers = [w for w in on.background_workers() if isinstance(w, ReconcileWorker)]
        assert len(workers) == 1 and workers[0].at == AT  # the default, 02:00 UTC
        assert not any(isinstance(w, ReconcileWorker) for w in off.background_workers())
    finally:
        await on.close()
        await off.close()
