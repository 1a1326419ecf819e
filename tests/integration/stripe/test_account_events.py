"""Stripe events about the customer and its subscription and cards (issue 17): a customer
deleted at Stripe, a subscription paused and resumed, a card's expiry and number updated. Each
delivered twice and out of order, on the emulator."""

from __future__ import annotations

import time
from typing import Any

import httpx
import stripe
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import PaymentMethod
from app.catalog.models import Catalog
from app.db.engine import write_from_here
from tests.integration.stripe.conftest import (
    Emulator,
    Services,
    customer_of,
    forward,
    login_new_user,
    post_form,
    subscribe,
    wait_for_events,
)


def sdk(emulator: Emulator) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_account_events", base_addresses={"api": emulator.url}, max_network_retries=0
    )


async def twice_out_of_order(
    client: AsyncTestClient[Litestar], deliveries: list[tuple[bytes, str]]
) -> list[dict[str, Any]]:
    """Reversed, then in order: every event arrives twice, the first time out of order."""
    results = await forward(client, list(reversed(deliveries)))
    results += await forward(client, deliveries)
    assert not [r for r in results if r["status"] == "failed"], results
    return results


async def _cards(session: AsyncSession, customer_id: int) -> list[PaymentMethod]:
    await session.rollback()
    query = select(PaymentMethod).where(PaymentMethod.customer_id == customer_id)
    return list(await session.scalars(query.execution_options(populate_existing=True)))


async def test_a_customer_deleted_at_stripe_is_forgotten_and_checkout_makes_a_new_one(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    email = "deleted-customer@example.com"
    cus = await subscribe(client, session, emulator, email, "pro", trial=True)
    before = emulator.deliveries_for(lambda e: cus in str(e["data"]["object"]))
    customer, _ = await customer_of(session, email)
    customer_id = customer.id
    assert await _cards(session, customer_id)

    mark = emulator.mark()
    # Deleting the customer cancels its subscription too, as Stripe does.
    sdk(emulator).v1.customers.delete(cus)
    deleted = await wait_for_events(
        emulator, cus, {"customer.deleted", "customer.subscription.deleted"}, after=mark
    )
    await twice_out_of_order(client, deleted)
    # Late copies of the old customer's events (its subscription, its card) change nothing.
    await forward(client, before)

    customer, subscription = await customer_of(session, email)
    assert customer.stripe_customer_id is None
    assert (subscription.plan_slug, subscription.stripe_subscription_id) == ("free", None)
    assert await _cards(session, customer_id) == []

    # The next Checkout creates a new Stripe customer instead of failing on the stale id.
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith(emulator.url), response.headers["location"]
    mark = emulator.mark()
    assert emulator.pay(response.headers["location"]).status_code == 303
    customer, _ = await customer_of(session, email)
    assert customer.stripe_customer_id and customer.stripe_customer_id != cus
    new = customer.stripe_customer_id
    await forward(
        client, await wait_for_events(emulator, new, {"checkout.session.completed"}, after=mark)
    )
    _, subscription = await customer_of(session, email)
    assert (subscription.plan_slug, subscription.status) == ("pro", "active")  # no second trial


async def test_a_checkout_before_the_deletion_webhook_still_gets_a_new_stripe_customer(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    """Deleted at Stripe, and the webhook not here yet: the stale id is found out at the
    first call that uses it, forgotten as the webhook would, and the Checkout goes on."""
    email = "deleted-before-webhook@example.com"
    cus = await subscribe(client, session, emulator, email, "pro", trial=True)
    sdk(emulator).v1.customers.delete(cus)  # its customer.deleted is never forwarded here

    response = await post_form(client, "/billing/credits/checkout", {"pack": "ai_100"})

    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith(emulator.url), response.headers["location"]
    customer, subscription = await customer_of(session, email)
    assert customer.stripe_customer_id and customer.stripe_customer_id != cus
    assert subscription.plan_slug == "free"  # Stripe canceled the deleted customer's plan


async def _paused_subscription(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    services: Services,
    email: str,
) -> tuple[str, str, str]:
    """A Pro trial, without a payment method, that pauses when it ends (on its own test
    clock); returns (Stripe customer, subscription, test clock)."""
    await login_new_user(client, email)
    api = sdk(emulator)
    clock = api.v1.test_helpers.test_clocks.create(params={"frozen_time": int(time.time())})
    stripe_customer = api.v1.customers.create(params={"email": email, "test_clock": clock.id})
    customer, _ = await customer_of(session, email)
    await write_from_here(session)
    customer.stripe_customer_id = stripe_customer.id
    await session.commit()
    price = await services.billing.price_id("plan_pro_monthly")  # syncs the catalog if needed
    sub = api.v1.subscriptions.create(
        params={
            "customer": stripe_customer.id,
            "items": [{"price": price}],
            "trial_period_days": 14,
            "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
            "metadata": {"customer_public_id": customer.public_id},
        }
    )
    return stripe_customer.id, sub.id, clock.id


async def test_a_paused_subscription_falls_back_to_free_limits_until_resumed(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    services: Services,
    catalog: Catalog,
) -> None:
    email = "paused@example.com"
    mark = emulator.mark()
    cus, sub_id, clock = await _paused_subscription(client, session, emulator, services, email)
    api = sdk(emulator)
    frozen = api.v1.test_helpers.test_clocks.retrieve(clock).frozen_time
    api.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": frozen + 15 * 86400})
    assert api.v1.subscriptions.retrieve(sub_id).status == "paused"
    paused = await wait_for_events(
        emulator, cus, {"customer.subscription.created", "customer.subscription.paused"}, after=mark
    )
    await twice_out_of_order(client, paused)

    customer, subscription = await customer_of(session, email)
    assert (subscription.plan_slug, subscription.status) == ("pro", "paused")
    free, pro = catalog.default_plan, catalog.plans["pro"]
    limits = {b.code: b.limit for b in await services.metering.balances_for(customer)}
    assert limits == {code: quota.included for code, quota in free.quotas.items()}
    assert limits != {code: quota.included for code, quota in pro.quotas.items()}
    page = await client.get("/billing")
    assert 'data-testid="plan-status">Paused<' in page.text, page.text
    assert 'data-state="paused"' in page.text and "Renews on" not in page.text

    # Resumed with a card: Pro's limits again, whatever order the events come in.
    mark = emulator.mark()
    pm = api.v1.payment_methods.attach("pm_card_visa", params={"customer": cus})
    api.v1.customers.update(cus, params={"invoice_settings": {"default_payment_method": pm.id}})
    api.v1.subscriptions.resume(sub_id)  # a new period starts now, charged to the card
    resumed = await wait_for_events(emulator, cus, {"customer.subscription.resumed"}, after=mark)
    await twice_out_of_order(client, paused + resumed)
    customer, subscription = await customer_of(session, email)
    assert (subscription.plan_slug, subscription.status) == ("pro", "active")
    limits = {b.code: b.limit for b in await services.metering.balances_for(customer)}
    assert limits == {code: quota.included for code, quota in pro.quotas.items()}


async def test_card_expiry_and_number_stay_current(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    email = "card-updates@example.com"
    cus = await subscribe(client, session, emulator, email, "pro", trial=True)
    customer, _ = await customer_of(session, email)
    customer_id = customer.id
    (card,) = await _cards(session, customer_id)
    pm = card.stripe_payment_method_id
    assert (card.last4, card.exp_month, card.exp_year) == ("4242", 12, 2034)

    mark = emulator.mark()
    sdk(emulator).v1.payment_methods.update(pm, params={"card": {"exp_month": 3, "exp_year": 2035}})
    # Then the card updater: a new number and expiry from the bank.
    httpx.post(
        f"{emulator.url}/_emulator/payment_methods/{pm}/card_update",
        data={"number": "4000056655665556", "exp_month": "7", "exp_year": "2036"},
    ).raise_for_status()
    deliveries = await wait_for_events(
        emulator,
        cus,
        {"payment_method.updated", "payment_method.automatically_updated"},
        after=mark,
    )
    await twice_out_of_order(client, deliveries)
    (card,) = await _cards(session, customer_id)
    assert (card.stripe_payment_method_id, card.last4, card.exp_month, card.exp_year) == (
        pm,
        "5556",
        7,
        2036,
    )
    page = await client.get("/billing/payment-methods")
    assert "5556" in page.text
