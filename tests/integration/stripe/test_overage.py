"""Overage end to end on the emulator: sync creates the meter and the metered prices once, a
Business checkout subscribes to both, usage beyond the included quota is accepted, goes out
through the outbox exactly once and is billed on the renewal invoice.

The module runs its own emulator (its global clock is advanced here, and the meter it starts
without is the one sync must create) and a catalog whose Business plan includes only 3 API
calls, so a handful of events runs into overage. At Stripe the catalog is the real one: the
included quota is never sent there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.accounts.service import AccountService
from app.admin.models import AuditLog
from app.apikeys.service import ApiKeyService
from app.billing.catalog_sync import CatalogSync
from app.billing.models import Invoice
from app.catalog.loader import load_catalog
from app.catalog.models import Catalog
from app.composition import Parts
from app.config import PROJECT_ROOT, Settings
from app.customers.models import Subscription
from app.db.engine import create_session_factory
from app.lib.clock import as_utc, utcnow
from app.metering.deps import provide_usage_api
from app.metering.outbox import StripeOutboxMessage
from app.metering.writer import UsageWriter
from app.stripe.gateway import StripeGateway
from app.stripe_sync import outbox
from app.stripe_sync.outbox import GRACE
from app.stripe_sync.worker import StripeWorker
from tests.conftest import sibling_client
from tests.integration.admin.conftest import ADMIN_PASSWORD, Admin, login
from tests.integration.notifications.conftest import eventually
from tests.integration.stripe.conftest import (
    Emulator,
    Services,
    customer_of,
    forward,
    login_new_user,
    post_form,
    running_emulator,
    wait_for_events,
)

INCLUDED = 3
PAID = {"checkout.session.completed", "customer.subscription.created", "invoice.paid"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with running_emulator(tmp_path_factory.mktemp("stripe-overage-emulator")) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    real = load_catalog(PROJECT_ROOT / "catalog.toml")
    business = real.plans["business"]
    quota = dataclasses.replace(business.quotas["api_calls"], included=INCLUDED)
    assert quota.overage_unit_amount == 1
    plans = {
        **real.plans,
        "business": dataclasses.replace(business, quotas={**business.quotas, "api_calls": quota}),
    }
    return dataclasses.replace(real, plans=plans)


@pytest.fixture
async def api(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The usage API on the browser client's event loop (the app's writer is bound to it)."""
    _key, raw = await ApiKeyService(session).create("overage tests")
    await session.commit()
    api = AsyncTestClient(client.app, base_url="http://testserver.local")
    api.blocking_portal = client.blocking_portal
    api.headers["Authorization"] = f"Bearer {raw}"
    yield api


@pytest.fixture
async def worker(
    engine: AsyncEngine, catalog: Catalog, gateway: StripeGateway, settings: Settings
) -> AsyncIterator[StripeWorker]:
    writer = UsageWriter(engine, catalog, upgrade_url="http://testserver.local/billing/upgrade")
    try:
        parts = Parts(
            settings=settings,
            catalog=catalog,
            engine=engine,
            writer_engine=engine,
            writer=writer,
            gateway=gateway,
            usage_api=provide_usage_api(catalog, writer),
            sessions=create_session_factory(engine),
        )
        yield parts.stripe_worker()
    finally:
        await writer.close()


def _stripe_get(emulator: Emulator, path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(
        f"{emulator.url}/v1/{path}",
        params=params,
        headers={"Authorization": "Bearer sk_test_emulator"},
    )
    response.raise_for_status()
    return dict(response.json())


def _meters(emulator: Emulator, event_name: str) -> list[dict[str, Any]]:
    meters = _stripe_get(emulator, "billing/meters", limit=100)["data"]
    return [m for m in meters if m["event_name"] == event_name and m["status"] == "active"]


def _usage(emulator: Emulator, meter_id: str, stripe_customer_id: str) -> float:
    summaries = _stripe_get(
        emulator,
        f"billing/meters/{meter_id}/event_summaries",
        customer=stripe_customer_id,
        start_time=0,
        end_time=2**40,
    )
    return float(summaries["data"][0]["aggregated_value"])


async def _event(
    api: AsyncTestClient[Litestar], external_id: str, transaction_id: str
) -> httpx.Response:
    return await api.post(
        "/api/v1/events",
        json={
            "event": {
                "transaction_id": transaction_id,
                "external_customer_id": external_id,
                "code": "api_calls",
            }
        },
    )


async def _outbox(session: AsyncSession) -> list[StripeOutboxMessage]:
    await session.rollback()
    session.expire_all()
    return list(await session.scalars(select(StripeOutboxMessage).order_by(StripeOutboxMessage.id)))


async def _renewal(gateway: StripeGateway, stripe_customer_id: str) -> dict[str, Any]:
    """The customer's first renewal invoice."""
    return next(
        inv
        for inv in await gateway.list_invoices(stripe_customer_id)
        if inv["billing_reason"] == "subscription_cycle"
    )


async def _subscribe_to_business(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator, email: str
) -> str:
    """Sign up, go through Business checkout, deliver the webhooks; the Stripe customer id."""
    await login_new_user(client, email)
    response = await post_form(
        client, "/billing/checkout", {"plan": "business", "interval": "month"}
    )
    assert response.status_code == 303, response.text
    customer, _ = await customer_of(session, email)
    assert customer.stripe_customer_id
    mark = emulator.mark()
    assert emulator.pay(response.headers["location"]).status_code == 303
    await forward(
        client, await wait_for_events(emulator, customer.stripe_customer_id, PAID, after=mark)
    )
    return customer.stripe_customer_id


async def test_sync_creates_the_meter_and_metered_prices_once(
    gateway: StripeGateway, catalog: Catalog, emulator: Emulator
) -> None:
    first = await CatalogSync(gateway, catalog).run()
    assert "meter bp_api_calls" in first.created
    assert "price overage_business_api_calls_monthly" in first.created
    assert "price overage_business_api_calls_yearly" in first.created
    second = await CatalogSync(gateway, catalog).run()
    assert not second.changed, second.lines()
    assert "meter bp_api_calls" in second.unchanged

    [meter] = _meters(emulator, "bp_api_calls")
    assert meter["display_name"] == "API calls"
    assert meter["default_aggregation"] == {"formula": "sum"}
    assert meter["customer_mapping"] == {"event_payload_key": "stripe_customer_id", "type": "by_id"}
    assert meter["value_settings"] == {"event_payload_key": "value"}
    keys = ["overage_business_api_calls_monthly", "overage_business_api_calls_yearly"]
    prices = await gateway.prices_by_lookup_key([*keys, "overage_pro_api_calls_monthly"])
    assert sorted(prices) == keys  # only plans with an overage price get one
    for key, interval in zip(keys, ("month", "year"), strict=True):
        price = prices[key]
        assert price["unit_amount"] == 1 and price["currency"] == "usd"
        assert price["product"] == "bp_plan_business"
        assert price["recurring"]["interval"] == interval
        assert price["recurring"]["usage_type"] == "metered"
        assert price["recurring"]["meter"] == meter["id"]


async def test_overage_is_reported_once_and_billed_at_renewal(
    client: AsyncTestClient[Litestar],
    api: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
    worker: StripeWorker,
) -> None:
    email = "overage@example.com"
    stripe_customer_id = await _subscribe_to_business(client, session, emulator, email)
    customer, subscription = await customer_of(session, email)
    external_id = customer.external_id
    assert (subscription.plan_slug, subscription.interval, subscription.status) == (
        "business",
        "month",
        "active",
    )
    remote = await gateway.retrieve_subscription(str(subscription.stripe_subscription_id))
    items = {i["price"]["lookup_key"]: i for i in remote["items"]["data"]}
    assert sorted(items) == ["overage_business_api_calls_monthly", "plan_business_monthly"]
    licensed = items["plan_business_monthly"]
    assert subscription.current_period_end is not None
    assert int(subscription.current_period_end.timestamp()) == licensed["current_period_end"]

    # Within the included quota: nothing for Stripe.
    for n in range(INCLUDED):
        assert (await _event(api, external_id, f"tx-{n}")).status_code == 200
    assert await _outbox(session) == []
    # Beyond it: accepted (not 402), one outbox row for the billed unit; a retry adds none.
    for _ in range(2):
        response = await _event(api, external_id, "tx-over")
        assert response.status_code == 200, response.text
    [message] = await _outbox(session)
    digest = hashlib.sha256(f"{external_id}\0tx-over".encode()).hexdigest()[:64]
    identifier = f"api_calls:{digest}"
    assert message.status == "pending"
    assert message.payload["event_name"] == "bp_api_calls"
    assert message.payload["stripe_customer_id"] == stripe_customer_id
    assert message.payload["value"] == 1
    assert message.payload["identifier"] == identifier

    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    [message] = await _outbox(session)
    assert message.status == "sent" and message.attempts == 1
    [meter] = _meters(emulator, "bp_api_calls")
    assert _usage(emulator, meter["id"], stripe_customer_id) == 1

    # Sent again (a response lost after Stripe stored it): counted once.
    await session.execute(
        update(StripeOutboxMessage).values(status="pending", next_attempt_at=utcnow())
    )
    await session.commit()
    assert await worker.run_once() == 1
    await gateway.create_meter_event(
        event_name="bp_api_calls",
        stripe_customer_id=stripe_customer_id,
        value=1,
        identifier=identifier,
        timestamp=int(message.payload["timestamp"]),
    )
    assert _usage(emulator, meter["id"], stripe_customer_id) == 1

    # The period ends: the renewal invoice bills the plan and the one unit of overage.
    mark = emulator.mark()
    emulator.advance(days=32)
    await forward(
        client,
        await wait_for_events(
            emulator,
            stripe_customer_id,
            {"customer.subscription.updated", "invoice.paid"},
            after=mark,
        ),
    )
    renewal = await _renewal(gateway, stripe_customer_id)
    lines = renewal["lines"]["data"]
    overage = [line for line in lines if line["amount"] == 1]
    assert [line["description"] for line in overage] == ["1 × API calls"]
    assert renewal["total"] == 14900 + 1 and renewal["status"] == "paid"

    _, subscription = await customer_of(session, email)
    assert subscription.plan_slug == "business"  # still mapped by the licensed item
    assert subscription.current_period_start is not None
    assert int(subscription.current_period_start.timestamp()) == licensed["current_period_end"]
    totals = await session.scalars(
        select(Invoice.total).where(Invoice.stripe_invoice_id == renewal["id"])
    )
    assert list(totals) == [14901]


async def test_plan_changes_add_and_remove_the_metered_item(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
    services: Services,
) -> None:
    email = "overage-change@example.com"
    stripe_customer_id = await _subscribe_to_business(client, session, emulator, email)

    async def change(plan: str, interval: str) -> list[str]:
        # At once, as an admin changes a plan (a customer's downgrade waits for the period
        # end: test_plan_change_review.py).
        customer, _ = await customer_of(session, email)
        await services.billing.change_plan(customer, plan, interval)
        _, subscription = await customer_of(session, email)
        assert (subscription.plan_slug, subscription.interval) == (plan, interval)
        remote = await gateway.retrieve_subscription(str(subscription.stripe_subscription_id))
        return sorted(i["price"]["lookup_key"] for i in remote["items"]["data"])

    assert await change("pro", "month") == ["plan_pro_monthly"]
    assert await change("business", "year") == [
        "overage_business_api_calls_yearly",
        "plan_business_yearly",
    ]
    assert await change("business", "month") == [
        "overage_business_api_calls_monthly",
        "plan_business_monthly",
    ]
    # Only the licensed item was prorated: every invoice since checkout is plan money.
    for invoice in await gateway.list_invoices(stripe_customer_id):
        for line in invoice["lines"]["data"]:
            assert "API calls" not in (line["description"] or ""), line

    # Reconcile reads the two-item subscription as Business: no subscription drift (the
    # plan changes' invoices are drift: their webhooks were not delivered here).
    customer, _ = await customer_of(session, email)
    drift = await services.billing.mirror.reconcile_customer(customer, repair=False)
    assert not [line for line in drift if "subscription differs" in line], drift
    # Stripe does not promise the items' order: the metered item first changes nothing.
    _, subscription = await customer_of(session, email)
    remote = await gateway.retrieve_subscription(str(subscription.stripe_subscription_id))
    remote["items"]["data"].reverse()
    assert remote["items"]["data"][0]["price"]["recurring"]["usage_type"] == "metered"
    outcome = await services.billing.mirror.apply_subscription(remote)
    assert outcome.endswith("on business/month"), outcome


async def test_leaving_a_plan_with_overage_mid_cycle_bills_the_overage_so_far(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
    services: Services,
) -> None:
    """Business → Pro at once (an admin's change) removes the metered item; the usage reported
    to its meter this cycle is billed on the plan change's invoice (flexible billing mode),
    not given away."""
    email = "overage-leave@example.com"
    stripe_customer_id = await _subscribe_to_business(client, session, emulator, email)
    _, subscription = await customer_of(session, email)
    remote = await gateway.retrieve_subscription(str(subscription.stripe_subscription_id))
    assert remote["billing_mode"]["type"] == "flexible"
    started = remote["items"]["data"][0]["current_period_start"]
    await gateway.create_meter_event(
        event_name="bp_api_calls",
        stripe_customer_id=stripe_customer_id,
        value=3,
        identifier="leave-1",
        timestamp=started + 60,
    )
    emulator.advance(days=1)

    customer, _ = await customer_of(session, email)
    await services.billing.change_plan(customer, "pro", "month")
    remote = await gateway.retrieve_subscription(str(subscription.stripe_subscription_id))
    assert [i["price"]["lookup_key"] for i in remote["items"]["data"]] == ["plan_pro_monthly"]
    invoice = next(
        inv
        for inv in await gateway.list_invoices(stripe_customer_id)
        if inv["id"] == remote["latest_invoice"]
    )
    usage = [line for line in invoice["lines"]["data"] if "API calls" in line["description"]]
    assert [(line["quantity"], line["amount"]) for line in usage] == [(3, 3)]


async def test_without_a_stripe_customer_the_quota_is_a_hard_limit(
    client: AsyncTestClient[Litestar], api: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    email = "overage-nostripe@example.com"
    await login_new_user(client, email)
    customer, subscription = await customer_of(session, email)
    external_id = customer.external_id
    assert customer.stripe_customer_id is None
    await session.execute(
        update(Subscription).where(Subscription.id == subscription.id).values(plan_slug="business")
    )
    await session.commit()
    for n in range(INCLUDED):
        assert (await _event(api, external_id, f"hard-{n}")).status_code == 200
    response = await _event(api, external_id, "hard-over")
    assert response.status_code == 402, response.text
    assert response.json()["error"] == "insufficient_balance"
    assert await _outbox(session) == []


async def test_an_admin_plan_change_goes_through_stripe_and_is_audited(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
    catalog: Catalog,
) -> None:
    """A customer paying through Stripe: the admin's change switches the Stripe subscription
    (prorated, its metered item removed), our row follows, and the audit log says how."""
    email = "overage-admin@example.com"
    stripe_customer_id = await _subscribe_to_business(client, session, emulator, email)
    customer, subscription = await customer_of(session, email)
    await AccountService(session, catalog).ensure_admin("boss@example.com", ADMIN_PASSWORD)
    await session.commit()
    admin = Admin(sibling_client(client), "boss@example.com")
    await login(admin.client, admin.email, ADMIN_PASSWORD)

    response = await admin.confirm_and_post(
        f"/admin/billing/customers/{customer.external_id}/confirm",
        reason="Downgrade asked by phone",
        action="change_plan",
        plan="pro",
        interval="month",
    )
    assert response.status_code == 303, response.text

    remote = await gateway.retrieve_subscription(str(subscription.stripe_subscription_id))
    assert [i["price"]["lookup_key"] for i in remote["items"]["data"]] == ["plan_pro_monthly"]
    invoices = await gateway.list_invoices(stripe_customer_id)
    change = next(inv for inv in invoices if inv["id"] == remote["latest_invoice"])
    assert change["billing_reason"] == "subscription_update" and change["total"] < 0
    _, subscription = await customer_of(session, email)
    assert (subscription.plan_slug, subscription.interval) == ("pro", "month")
    [entry] = await session.scalars(select(AuditLog).where(AuditLog.action == "change_plan"))
    assert entry.details["through_stripe"] is True
    assert entry.details["from_plan"] == "business" and entry.details["to_plan"] == "pro"
    assert entry.reason == "Downgrade asked by phone"


class StepClock:
    """Our clock in this test: it moves a second per batch of usage the API answers."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_a_periods_usage_all_reaches_its_invoice_when_it_ends_during_heavy_ingest(
    client: AsyncTestClient[Litestar],
    api: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
    worker: StripeWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Usage batches arrive from three clients at once while our clock passes the period's
    end and the worker drains the outbox alongside. Stripe closes the period `GRACE` after
    its end: by then every event from before the end is on the renewal invoice, and the
    ones after it count in the next period."""
    email = "overage-period-end@example.com"
    stripe_customer_id = await _subscribe_to_business(client, session, emulator, email)
    customer, subscription = await customer_of(session, email)
    assert subscription.current_period_end is not None
    end = as_utc(subscription.current_period_end)
    # Stripe's clock a few minutes before the end (it accepts usage up to 5 minutes ahead).
    httpx.post(f"{emulator.url}/_emulator/advance", data={"to": int(end.timestamp()) - 240})
    clock = StepClock(end - timedelta(seconds=15))
    monkeypatch.setattr(client.app.state.usage_writer, "clock", clock)
    monkeypatch.setattr(outbox, "utcnow", clock)

    accepted: list[datetime] = []

    async def ingest(client_no: int) -> None:
        for batch in range(10):
            events = [
                {
                    "transaction_id": f"heavy-{client_no}-{batch}-{n}",
                    "external_customer_id": customer.external_id,
                    "code": "api_calls",
                }
                for n in range(20)
            ]
            response = await api.post("/api/v1/events/batch", json={"events": events})
            assert response.status_code == 200, response.text
            for outcome in response.json()["events"]:
                assert outcome["status"] == "accepted", outcome
                accepted.append(datetime.fromisoformat(outcome["event"]["created_at"]))
            clock.now += timedelta(seconds=1)

    worker.start()
    try:
        await asyncio.gather(*(ingest(n) for n in range(3)))

        async def sent_before_the_end() -> bool:
            rows = await _outbox(session)
            return not [m for m in rows if m.status != "sent" and as_utc(m.created_at) < end]

        await eventually(sent_before_the_end, timeout=60, what="the period's usage at Stripe")
    finally:
        await worker.stop()
    before = sum(1 for at in accepted if at < end)
    after = len(accepted) - before
    assert before > 100 and after > 100  # the period ended in the middle of it

    # Stripe closes the period an hour after its end (the emulator had not reached it yet).
    clock_now = httpx.get(f"{emulator.url}/_emulator/clock").json()["now"]
    assert clock_now < end.timestamp(), "the test ran past Stripe's period end"
    httpx.post(f"{emulator.url}/_emulator/advance", data={"to": int((end + GRACE).timestamp())})
    renewal = await _renewal(gateway, stripe_customer_id)
    [line] = [line for line in renewal["lines"]["data"] if "API calls" in line["description"]]
    assert line["quantity"] == before - INCLUDED  # every billed call before the end
    assert renewal["total"] == 14900 + before - INCLUDED

    # The rest counts in the next period (the new period's included calls first).
    async def all_sent() -> bool:
        return all(m.status == "sent" for m in await _outbox(session))

    await worker.run_once()
    assert await all_sent()
    [meter] = _meters(emulator, "bp_api_calls")
    next_period = _stripe_get(
        emulator,
        f"billing/meters/{meter['id']}/event_summaries",
        customer=stripe_customer_id,
        start_time=int(end.timestamp()),
        end_time=int(end.timestamp()) + 86400,
    )
    assert float(next_period["data"][0]["aggregated_value"]) == after - INCLUDED
