"""Every gateway call through the real SDK against the emulator, plus sync, outbox and reconcile."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.catalog_sync import CatalogSync
from app.catalog.models import Catalog
from app.metering.outbox import StripeOutboxMessage
from app.stripe.gateway import (
    InvalidSignature,
    LineItem,
    StripeCardError,
    StripeGateway,
    StripeGatewayError,
    StripeNotFound,
)
from app.stripe_sync.outbox import drain
from app.stripe_sync.repository import OutboxRepository
from tests.integration.stripe.conftest import (
    Emulator,
    Services,
    customer_of,
    flashes,
    forward,
    login_new_user,
    post_form,
    wait_for_events,
)


async def test_customers_products_prices_and_sync_is_idempotent(
    gateway: StripeGateway, catalog: Catalog
) -> None:
    first = await gateway.create_customer(
        email="gw@example.com", name="Gw", metadata={"k": "v"}, key="test-customer-gw-1"
    )
    again = await gateway.create_customer(
        email="gw@example.com", name="Gw", metadata={"k": "v"}, key="test-customer-gw-1"
    )
    assert again["id"] == first["id"]  # the idempotency key made the retry safe
    assert (await gateway.retrieve_customer(first["id"]))["email"] == "gw@example.com"

    await CatalogSync(gateway, catalog).run()
    second = await CatalogSync(gateway, catalog).run()
    assert not second.changed, second.lines()
    prices = await gateway.prices_by_lookup_key(["plan_pro_monthly", "pack_ai_100"])
    assert prices["plan_pro_monthly"]["unit_amount"] == 2900
    assert prices["plan_pro_monthly"]["recurring"]["interval"] == "month"
    assert prices["pack_ai_100"]["unit_amount"] == 1000
    assert (await gateway.retrieve_product("bp_plan_pro") or {})["name"] == "Pro"
    # Business bills API calls beyond its quota: one meter, a metered price per interval.
    meters = [
        m
        for m in await gateway.list_meters()
        if m["event_name"] == "bp_api_calls" and m["status"] == "active"
    ]
    assert len(meters) == 1
    overage = await gateway.prices_by_lookup_key(["overage_business_api_calls_yearly"])
    recurring = overage["overage_business_api_calls_yearly"]["recurring"]
    assert (recurring["interval"], recurring["usage_type"], recurring["meter"]) == (
        "year",
        "metered",
        meters[0]["id"],
    )
    assert await gateway.retrieve_product("bp_plan_nope") is None


async def test_checkout_sessions_portal_subscriptions_cards_and_invoices(
    gateway: StripeGateway, catalog: Catalog, emulator: Emulator
) -> None:
    await CatalogSync(gateway, catalog).run()
    prices = await gateway.prices_by_lookup_key(["plan_pro_monthly", "plan_business_monthly"])
    customer = await gateway.create_customer(
        email="sub@example.com", name=None, metadata={}, key="test-customer-sub-1"
    )
    common = {
        "customer_id": customer["id"],
        "client_reference_id": "ref",
        "success_url": "http://x/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://x/cancel",
        "metadata": {"kind": "test"},
    }
    setup = await gateway.create_checkout_session(mode="setup", key="t-setup-1", **common)
    assert setup["mode"] == "setup"
    assert emulator.pay(setup["url"]).status_code == 303
    cards = await gateway.list_payment_methods(customer["id"])
    assert [c["card"]["last4"] for c in cards] == ["4242"]
    await gateway.set_default_payment_method(customer["id"], cards[0]["id"], key="t-default-1")
    assert (await gateway.retrieve_payment_method(cards[0]["id"]))["customer"] == customer["id"]

    session = await gateway.create_checkout_session(
        mode="subscription",
        line_items=[LineItem(prices["plan_pro_monthly"]["id"])],
        key="t-sub-1",
        **common,
    )
    assert emulator.pay(session["url"]).status_code == 303
    done = await gateway.retrieve_checkout_session(session["id"])
    assert done["status"] == "complete" and done["line_items"]["data"]
    sub = await gateway.retrieve_subscription(done["subscription"])
    assert [s["id"] for s in await gateway.list_subscriptions(customer["id"])] == [sub["id"]]
    item = sub["items"]["data"][0]
    assert item["current_period_end"] > item["current_period_start"]
    changed = await gateway.change_subscription_price(
        sub["id"],
        item_id=item["id"],
        price_id=prices["plan_business_monthly"]["id"],
        proration_behavior="always_invoice",
        metadata={"plan": "business"},
        key="t-change-1",
    )
    assert changed["items"]["data"][0]["price"]["lookup_key"] == "plan_business_monthly"
    assert (await gateway.set_cancel_at_period_end(sub["id"], True, key="t-c-1"))[
        "cancel_at_period_end"
    ]
    await gateway.set_subscription_payment_method(sub["id"], cards[0]["id"], key="t-pm-1")
    invoices = await gateway.list_invoices(customer["id"])
    assert len(invoices) == 2  # the first month and the proration
    invoice = await gateway.retrieve_invoice(invoices[0]["id"])
    assert invoice["parent"]["subscription_details"]["subscription"] == sub["id"]

    detached = await gateway.detach_payment_method(cards[0]["id"], key="t-detach-1")
    assert detached["customer"] is None


async def test_errors_are_translated(gateway: StripeGateway) -> None:
    with pytest.raises(StripeNotFound):
        await gateway.retrieve_subscription("sub_missing")
    customer = await gateway.create_customer(
        email=None, name=None, metadata={}, key="test-customer-err-1"
    )
    with pytest.raises(StripeGatewayError) as excinfo:
        await gateway.set_default_payment_method(customer["id"], "pm_missing", key="t-err-1")
    assert excinfo.value.message
    down = StripeGateway(
        "sk_test_x", "whsec_x", api_base="http://127.0.0.1:9", max_network_retries=0
    )
    with pytest.raises(StripeGatewayError) as excinfo:
        await down.retrieve_customer("cus_x")
    assert "could not be reached" in excinfo.value.message
    with pytest.raises(InvalidSignature):
        gateway.verify_signature(b"{}", "t=1,v1=00")
    assert issubclass(StripeCardError, StripeGatewayError)


async def test_meter_events_go_out_through_the_outbox_once(
    gateway: StripeGateway, session: AsyncSession
) -> None:
    customer = await gateway.create_customer(
        email=None, name=None, metadata={}, key="test-customer-meter-1"
    )
    meters = {m["event_name"] for m in await gateway.list_meters()}
    if "bp_ai_requests" not in meters:
        await gateway.create_meter(
            display_name="AI requests", event_name="bp_ai_requests", formula="sum", key="t-m-1"
        )
    for _ in range(2):  # enqueued twice (a retried usage write): one message
        await OutboxRepository(session).add_meter_event(
            identifier="ai_requests:tx-overage-1",
            stripe_customer_id=customer["id"],
            meter_code="ai_requests",
            value=3,
            timestamp=datetime.now(UTC),
        )
        await session.commit()
    assert await drain(session, gateway) == 1
    assert await drain(session, gateway) == 0
    message = await session.scalar(select(StripeOutboxMessage))
    assert message is not None and message.status == "sent" and message.attempts == 1
    # Sent again (a lost response): the same call, which Stripe counts once.
    event = await gateway.create_meter_event(
        event_name="bp_ai_requests",
        stripe_customer_id=customer["id"],
        value=3,
        identifier="ai_requests:tx-overage-1",
        timestamp=message.payload["timestamp"],
    )
    assert event["identifier"] == "ai_requests:tx-overage-1"


async def test_cards_default_remove_and_ownership(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    await login_new_user(client, "cards@example.com")
    mark = emulator.mark()
    added = await post_form(client, "/billing/payment-methods/add")
    assert added.status_code == 303
    customer, _ = await customer_of(session, "cards@example.com")
    assert emulator.pay(added.headers["location"]).status_code == 303
    await forward(
        client,
        await wait_for_events(
            emulator, customer.stripe_customer_id or "", {"checkout.session.completed"}, after=mark
        ),
    )
    second = await post_form(client, "/billing/payment-methods/add")
    assert (
        emulator.pay(
            second.headers["location"],
            {"card_number": "5555 5555 5555 4444", "exp_date": "12 / 34", "cvc": "123"},
        ).status_code
        == 303
    )
    # No webhook for the second card yet: the action asks Stripe whose card it is.
    cards = await emulator_cards(customer.stripe_customer_id or "", emulator)
    mastercard = next(c for c in cards if c["card"]["last4"] == "4444")
    made = await post_form(client, f"/billing/payment-methods/{mastercard['id']}/default")
    assert made.status_code == 303
    page = await client.get("/billing/payment-methods")
    assert any("4444 is now your default payment method" in f for f in flashes(page.text))

    # Someone else's card, or no card at all: 404.
    assert (
        await post_form(client, "/billing/payment-methods/pm_card_visa/remove")
    ).status_code == 404
    removed = await post_form(client, f"/billing/payment-methods/{mastercard['id']}/remove")
    assert removed.status_code == 303
    cards = await emulator_cards(customer.stripe_customer_id or "", emulator)
    assert [c["card"]["last4"] for c in cards] == ["4242"]
    # Without a CSRF token nothing happens.
    no_csrf = await client.post(
        f"/billing/payment-methods/{cards[0]['id']}/remove", follow_redirects=False
    )
    assert no_csrf.status_code == 403


async def emulator_cards(stripe_customer_id: str, emulator: Emulator) -> list[dict]:
    gateway = StripeGateway("sk_test_x", "whsec_x", api_base=emulator.url)
    return await gateway.list_payment_methods(stripe_customer_id)


async def test_htmx_gets_hx_redirect(client: AsyncTestClient[Litestar], emulator: Emulator) -> None:
    await login_new_user(client, "htmx@example.com")
    response = await post_form(
        client,
        "/billing/checkout",
        {"plan": "pro", "interval": "year"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].startswith(emulator.url + "/checkout/")


async def test_reconcile_repairs_drift(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator, services: Services
) -> None:
    await login_new_user(client, "drift@example.com")
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    assert emulator.pay(response.headers["location"]).status_code == 303
    customer, sub = await customer_of(session, "drift@example.com")
    # No webhook was ever delivered: we still think Free.
    assert sub.plan_slug == "free"
    report = await services.billing.mirror.reconcile_customer(customer, repair=False)
    assert any("subscription differs" in line for line in report)
    _, sub = await customer_of(session, "drift@example.com")
    assert sub.plan_slug == "free"  # a dry run changes nothing
    customer, _ = await customer_of(session, "drift@example.com")
    report = await services.billing.mirror.reconcile_customer(customer)
    await session.commit()
    assert any("invoice" in line for line in report) and any("cards" in line for line in report)
    _, sub = await customer_of(session, "drift@example.com")
    assert (sub.plan_slug, sub.status) == ("pro", "trialing")
    customer, _ = await customer_of(session, "drift@example.com")
    assert await services.billing.mirror.reconcile_customer(customer) == []
