"""A customer who already pays at Stripe never gets a second subscription, and when two
exist anyway (two Checkouts completed) the newer one is kept whatever the events' order."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.statuses import SubscriptionStatus
from app.stripe.gateway import LineItem, StripeGateway
from tests.integration.stripe.conftest import (
    Emulator,
    Services,
    change_plan,
    customer_of,
    login_new_user,
    post_form,
)


async def test_checkout_again_before_the_webhook_changes_the_plan_instead(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    email = "twice@example.com"
    await login_new_user(client, email)
    first = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    assert emulator.pay(first.headers["location"]).status_code == 303
    customer, sub = await customer_of(session, email)
    assert sub.plan_slug == "free"  # no webhook delivered yet
    assert customer.stripe_customer_id

    # The user tries again (another tab, a late webhook): no second Checkout.
    again = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    assert again.status_code == 303
    assert not again.headers["location"].startswith(emulator.url), again.headers["location"]
    _, sub = await customer_of(session, email)
    assert (sub.plan_slug, sub.status) == ("pro", "trialing")

    # Another plan: a change of the existing subscription (reviewed first), not a new one.
    other = await post_form(client, "/billing/checkout", {"plan": "business", "interval": "month"})
    assert other.status_code == 303
    assert other.headers["location"] == "/billing/subscription/review?plan=business&interval=month"
    assert (await change_plan(client, "business")).status_code == 303
    remote = await gateway.list_subscriptions(customer.stripe_customer_id)
    live = [s for s in remote if s["status"] in SubscriptionStatus.live()]
    assert len(live) == 1
    lookup_keys = {item["price"]["lookup_key"] for item in live[0]["items"]["data"]}
    assert "plan_business_monthly" in lookup_keys
    _, sub = await customer_of(session, email)
    assert (sub.plan_slug, sub.stripe_subscription_id) == ("business", live[0]["id"])


async def test_two_live_subscriptions_keep_the_newer_in_any_order(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
    services: Services,
) -> None:
    email = "two-subs@example.com"
    await login_new_user(client, email)
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    assert emulator.pay(response.headers["location"]).status_code == 303
    customer, _ = await customer_of(session, email)
    cus = customer.stripe_customer_id
    assert cus
    # A second subscription made behind the portal's back (the bug this guards against).
    prices = await gateway.prices_by_lookup_key(["plan_business_monthly"])
    second = await gateway.create_checkout_session(
        mode="subscription",
        customer_id=cus,
        client_reference_id=customer.public_id,
        success_url="http://x/success?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://x/cancel",
        metadata={"kind": "plan", "customer_public_id": customer.public_id},
        line_items=[LineItem(prices["plan_business_monthly"]["id"])],
        key="test-two-subs-second",
    )
    assert emulator.pay(second["url"]).status_code == 303
    subs = [
        s for s in await gateway.list_subscriptions(cus) if s["status"] in SubscriptionStatus.live()
    ]
    assert len(subs) == 2
    newer = max(subs, key=lambda s: (int(s["created"]), s["id"]))

    outcomes = []
    for order in (subs, subs[::-1]):
        customer, row = await customer_of(session, email)
        row.plan_slug, row.status, row.stripe_subscription_id = "free", "active", None
        await session.commit()
        for sub in order:
            await services.billing.mirror.apply_subscription(sub)
        await session.commit()
        _, row = await customer_of(session, email)
        outcomes.append((row.stripe_subscription_id, row.plan_slug))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == newer["id"]

    # Both bill: reconciling says so (and leaves the choice of which to end to a person).
    customer, _ = await customer_of(session, email)
    drift = await services.billing.mirror.reconcile_customer(customer, repair=False)
    older = next(s for s in subs if s["id"] != newer["id"])
    assert any("2 live subscriptions" in line and older["id"] in line for line in drift), drift


async def test_a_new_checkout_closes_the_unpaid_one(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    """Two tabs: Checkout for Pro opened, then for Business. Only the newer can be paid, so
    paying both cannot make two subscriptions that both bill."""
    email = "two-tabs@example.com"
    await login_new_user(client, email)
    first = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    second = await post_form(client, "/billing/checkout", {"plan": "business", "interval": "month"})
    first_url, second_url = first.headers["location"], second.headers["location"]
    assert first_url.startswith(emulator.url) and second_url.startswith(emulator.url)
    assert first_url != second_url

    assert emulator.pay(first_url).status_code != 303  # expired: no payment taken
    assert emulator.pay(second_url).status_code == 303
    customer, _ = await customer_of(session, email)
    assert customer.stripe_customer_id
    remote = await gateway.list_subscriptions(customer.stripe_customer_id)
    live = [s for s in remote if s["status"] in SubscriptionStatus.live()]
    assert len(live) == 1
    assert live[0]["items"]["data"][0]["price"]["lookup_key"] == "plan_business_monthly"
    assert await gateway.open_checkout_sessions(customer.stripe_customer_id) == []
