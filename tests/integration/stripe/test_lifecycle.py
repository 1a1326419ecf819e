"""A whole subscription lifecycle on the emulator; its webhooks shuffled and duplicated converge."""

from __future__ import annotations

import random
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import Invoice, PaymentMethod
from app.customers.models import Customer
from app.stripe_sync.models import StripeEvent
from tests.integration.stripe.conftest import (
    FAILS_LATER,
    Emulator,
    change_plan,
    customer_of,
    forward,
    login_new_user,
    post_form,
    related_to,
    wait_for_events,
)


async def snapshot(session: AsyncSession, email: str) -> dict[str, Any]:
    customer, sub = await customer_of(session, email)
    invoices = await session.scalars(
        select(Invoice)
        .where(Invoice.customer_id == customer.id)
        .order_by(Invoice.stripe_invoice_id)
    )
    cards = await session.scalars(
        select(PaymentMethod).where(PaymentMethod.customer_id == customer.id)
    )
    return {
        "plan": (sub.plan_slug, sub.interval, sub.status, sub.stripe_subscription_id),
        "period": (sub.current_period_start, sub.current_period_end, sub.trial_end),
        "cancel_at_period_end": sub.cancel_at_period_end,
        "invoices": [(i.stripe_invoice_id, i.status, i.total, i.amount_paid) for i in invoices],
        "cards": sorted((c.stripe_payment_method_id, c.is_default) for c in cards),
    }


async def forget_stripe(session: AsyncSession, customer: Customer) -> None:
    """Our mirror as it was before any webhook: a free plan, no invoices, cards or events."""
    _, sub = await customer_of(session, customer.email or "")
    await session.execute(delete(StripeEvent))
    await session.execute(delete(Invoice).where(Invoice.customer_id == customer.id))
    await session.execute(delete(PaymentMethod).where(PaymentMethod.customer_id == customer.id))
    sub.plan_slug, sub.interval, sub.status = "free", "month", "active"
    sub.stripe_subscription_id = None
    sub.current_period_start = sub.current_period_end = sub.trial_end = sub.canceled_at = None
    sub.cancel_at_period_end, sub.metadata_ = False, {}
    await session.commit()


async def step(
    client: AsyncTestClient[Litestar], emulator: Emulator, cus: str, mark: int, types: set[str]
) -> None:
    await forward(client, await wait_for_events(emulator, cus, types, after=mark))


async def test_lifecycle_in_any_order_converges(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    email = "lifecycle@example.com"
    await login_new_user(client, email)
    mark = emulator.mark()
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    customer, _ = await customer_of(session, email)
    cus = customer.stripe_customer_id
    assert cus and emulator.pay(response.headers["location"]).status_code == 303
    await step(client, emulator, cus, mark, {"checkout.session.completed", "invoice.paid"})
    assert (await snapshot(session, email))["plan"][:3] == ("pro", "month", "trialing")

    # The trial ends: the first real invoice is paid and the subscription turns active.
    mark = emulator.mark()
    emulator.advance(days=15)
    await step(client, emulator, cus, mark, {"invoice.paid", "customer.subscription.updated"})
    assert (await snapshot(session, email))["plan"][:3] == ("pro", "month", "active")

    # Upgrade to Business with proration, then cancel, resume and cancel again.
    mark = emulator.mark()
    changed = await change_plan(client, "business")
    assert changed.status_code == 303
    await step(client, emulator, cus, mark, {"invoice.paid", "customer.subscription.updated"})
    for action in ("cancel", "resume", "cancel"):
        assert (await post_form(client, f"/billing/subscription/{action}")).status_code == 303
    in_order = await snapshot(session, email)
    assert in_order["plan"][:3] == ("business", "month", "active")
    assert in_order["cancel_at_period_end"] is True
    assert len(in_order["invoices"]) == 3  # trial ($0), first Pro month, proration
    assert all(status == "paid" for _, status, _, _ in in_order["invoices"])

    everything = emulator.deliveries_for(related_to(cus))
    types = {b'"type": "customer.subscription.updated"', b'"type": "invoice.created"'}
    assert all(any(t in body for body, _ in everything) for t in types)
    for seed in (1, 2, 3):
        rng = random.Random(seed)
        shuffled = everything + rng.sample(everything, k=len(everything) // 2)
        rng.shuffle(shuffled)
        await forget_stripe(session, customer)
        results = await forward(client, shuffled)
        assert sum(not r["duplicate"] for r in results) == len(everything)
        assert await snapshot(session, email) == in_order, f"seed {seed}"

    # The period ends: Stripe deletes the subscription and the customer is on Free.
    mark = emulator.mark()
    emulator.advance(days=32)
    await step(client, emulator, cus, mark, {"customer.subscription.deleted"})
    final = await snapshot(session, email)
    assert final["plan"] == ("free", "month", "active", None)
    # A late, stale copy of the old events changes nothing.
    await forward(client, everything[:5])
    assert await snapshot(session, email) == final


async def test_payment_failure_is_past_due_then_free_when_deleted(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    email = "pastdue@example.com"
    await login_new_user(client, email)
    mark = emulator.mark()
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    customer, _ = await customer_of(session, email)
    cus = customer.stripe_customer_id
    assert cus
    # Trial: nothing is charged now, so a card that fails later is accepted.
    assert emulator.pay(response.headers["location"], FAILS_LATER).status_code == 303
    await step(client, emulator, cus, mark, {"checkout.session.completed"})
    mark = emulator.mark()
    emulator.advance(days=15)
    await step(client, emulator, cus, mark, {"invoice.payment_failed"})
    state = await snapshot(session, email)
    assert state["plan"][:3] == ("pro", "month", "past_due")
    assert any(status == "open" for _, status, _, _ in state["invoices"])
    page = await client.get("/billing")
    assert page.status_code == 200

    # Deleted at Stripe (the dunning gave up): back to the free plan.
    sub_id = state["plan"][3]
    mark = emulator.mark()
    import httpx

    httpx.delete(
        f"{emulator.url}/v1/subscriptions/{sub_id}",
        headers={"Authorization": "Bearer sk_test_x"},
    ).raise_for_status()
    await step(client, emulator, cus, mark, {"customer.subscription.deleted"})
    assert (await snapshot(session, email))["plan"] == ("free", "month", "active", None)


async def test_replayed_end_of_an_old_subscription_keeps_a_plan_set_by_an_admin(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator, services: Any
) -> None:
    email = "complimentary@example.com"
    await login_new_user(client, email)
    mark = emulator.mark()
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    customer, _ = await customer_of(session, email)
    cus = customer.stripe_customer_id
    assert cus and emulator.pay(response.headers["location"]).status_code == 303
    await step(client, emulator, cus, mark, {"checkout.session.completed"})
    sub_id = (await snapshot(session, email))["plan"][3]
    mark = emulator.mark()
    import httpx

    httpx.delete(
        f"{emulator.url}/v1/subscriptions/{sub_id}",
        headers={"Authorization": "Bearer sk_test_x"},
    ).raise_for_status()
    await step(client, emulator, cus, mark, {"customer.subscription.deleted"})
    assert (await snapshot(session, email))["plan"] == ("free", "month", "active", None)

    # An admin gives the customer Business for free (no Stripe subscription) ...
    _, row = await customer_of(session, email)
    row.plan_slug = "business"
    await session.commit()
    # ... and the old subscription's deletion is replayed: the plan stays.
    deleted = await session.scalar(
        select(StripeEvent).where(
            StripeEvent.type == "customer.subscription.deleted", StripeEvent.object_id == sub_id
        )
    )
    assert deleted is not None
    replayed = await services.events.replay(deleted.stripe_event_id)
    assert replayed.status == "ignored"  # not the customer's subscription
    assert (await snapshot(session, email))["plan"] == ("business", "month", "active", None)
