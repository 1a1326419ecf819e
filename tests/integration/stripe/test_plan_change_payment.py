"""A plan change takes effect only when its proration is paid."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.stripe_objects import plan_item
from app.catalog.models import Catalog
from app.stripe.gateway import StripeGateway
from tests.integration.stripe.conftest import (
    FAILS_LATER,
    Emulator,
    change_plan,
    customer_of,
    flashes,
    post_form,
    subscribe,
)


async def test_upgrade_with_a_failing_card_is_refused_and_changes_nothing(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
    catalog: Catalog,
) -> None:
    email = "upgrade-fails@example.com"
    cus = await subscribe(client, session, emulator, email, trial=False)
    await _make_charges_fail(client, emulator, gateway, cus)

    changed = await change_plan(client, "business")
    assert changed.status_code == 303
    page = await client.get(changed.headers["location"])
    assert any("declined" in text.lower() for text in flashes(page.text)), flashes(page.text)

    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.status) == ("pro", "active")
    assert row.stripe_subscription_id
    remote = await gateway.retrieve_subscription(row.stripe_subscription_id)
    item = plan_item(catalog, remote)
    assert item is not None and item["price"]["lookup_key"] == "plan_pro_monthly"
    assert remote["status"] == "active"


async def _make_charges_fail(
    client: AsyncTestClient[Litestar], emulator: Emulator, gateway: StripeGateway, cus: str
) -> None:
    """The default card becomes one that attaches but whose charges fail."""
    added = await post_form(client, "/billing/payment-methods/add")
    assert emulator.pay(added.headers["location"], FAILS_LATER).status_code == 303
    failing = next(
        c for c in await gateway.list_payment_methods(cus) if c["card"]["last4"] == "0341"
    )
    made = await post_form(client, f"/billing/payment-methods/{failing['id']}/default")
    assert made.status_code == 303


async def test_leaving_a_trial_for_a_plan_without_one_pays_now(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    """Pro's 14-day trial does not carry over to Business, which offers none."""
    email = "trial-to-business@example.com"
    cus = await subscribe(client, session, emulator, email, trial=True)
    changed = await change_plan(client, "business")
    page = await client.get(changed.headers["location"])
    assert any("trial ended" in text for text in flashes(page.text)), flashes(page.text)
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.status, row.trial_end) == ("business", "active", None)
    paid = [i for i in await gateway.list_invoices(cus) if i["status"] == "paid"]
    assert any(i["amount_paid"] == 14_900 for i in paid), [i["amount_paid"] for i in paid]


async def test_leaving_a_trial_with_a_failing_card_keeps_the_trial(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    email = "trial-to-business-fails@example.com"
    cus = await subscribe(client, session, emulator, email, trial=True)
    await _make_charges_fail(client, emulator, gateway, cus)

    changed = await change_plan(client, "business")
    page = await client.get(changed.headers["location"])
    assert any("declined" in text.lower() for text in flashes(page.text)), flashes(page.text)
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.status) == ("pro", "trialing")
    assert row.stripe_subscription_id
    remote = await gateway.retrieve_subscription(row.stripe_subscription_id)
    assert remote["status"] == "trialing"
