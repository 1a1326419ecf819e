"""Upgrade, credits and cards through Checkout on the emulator, driven over HTTP."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import Invoice, PaymentMethod
from app.customers.models import Customer
from app.lib.clock import utcnow
from app.stripe_sync.models import StripeEvent
from tests.integration.stripe.conftest import (
    DECLINED,
    Emulator,
    Services,
    customer_of,
    flashes,
    forward,
    login_new_user,
    post_form,
    wait_for_events,
)


async def test_upgrade_flips_to_pro_only_when_the_webhook_lands(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    await login_new_user(client, "upgrade@example.com")
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    assert response.status_code == 303, response.text
    checkout_url = response.headers["location"]
    assert checkout_url.startswith(emulator.url + "/checkout/cs_")

    customer, subscription = await customer_of(session, "upgrade@example.com")
    assert customer.stripe_customer_id
    assert subscription.plan_slug == "free"

    mark = emulator.mark()
    paid = emulator.pay(checkout_url)
    assert paid.status_code == 303
    success = paid.headers["location"]
    assert "/billing/checkout/success?session_id=cs_" in success
    session_id = success.split("session_id=")[1]

    # The redirect alone changes nothing: the page says "processing" and polls.
    page = await client.get(success.replace("http://testserver.local", ""))
    assert page.status_code == 200
    assert 'data-state="processing"' in page.text
    assert "hx-trigger" in page.text
    assert 'data-testid="checkout-progress"' in page.text  # an indeterminate progress bar
    assert page.text.count('href="/billing"') == 2  # the navigation's, and one on the page
    assert "Back to billing" not in page.text
    _, subscription = await customer_of(session, "upgrade@example.com")
    assert subscription.plan_slug == "free"

    deliveries = await wait_for_events(
        emulator,
        customer.stripe_customer_id,
        {"checkout.session.completed", "customer.subscription.created", "invoice.paid"},
        after=mark,
    )
    await forward(client, deliveries)

    partial = await client.get(
        f"/billing/checkout/status?session_id={session_id}", headers={"HX-Request": "true"}
    )
    assert 'data-state="done"' in partial.text
    assert "You are on Pro" in partial.text
    assert "hx-trigger" not in partial.text  # polling stops
    # ... and the page returns to billing by itself (static/app.js), where the plan shows.
    assert 'data-return-to="/billing" data-return-after="3"' in partial.text
    assert partial.text.count('href="/billing"') == 1  # one link: "Go to billing"
    assert "1,000" in partial.text  # Pro's AI requests quota
    # In the portal's words, as on the billing page: "Trial", "Dec 6, 2026".
    assert 'data-testid="checkout-status-label">Trial<' in partial.text
    assert re.search(r"Free trial until [A-Z][a-z]{2} \d{1,2}, \d{4}\.", partial.text)

    _, subscription = await customer_of(session, "upgrade@example.com")
    assert subscription.plan_slug == "pro"
    assert subscription.status == "trialing"  # Pro has a 14-day trial
    assert subscription.stripe_subscription_id
    assert subscription.current_period_end is not None
    assert subscription.trial_end is not None
    invoices = list(
        await session.scalars(select(Invoice).where(Invoice.customer_id == customer.id))
    )
    assert [inv.status for inv in invoices] == ["paid"]
    assert invoices[0].stripe_subscription_id == subscription.stripe_subscription_id
    assert invoices[0].hosted_invoice_url and invoices[0].invoice_pdf
    cards = list(
        await session.scalars(select(PaymentMethod).where(PaymentMethod.customer_id == customer.id))
    )
    assert [(c.last4, c.is_default) for c in cards] == [("4242", True)]


async def test_declined_card_leaves_the_plan_unchanged(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    await login_new_user(client, "declined@example.com")
    response = await post_form(
        client, "/billing/checkout", {"plan": "business", "interval": "month"}
    )
    checkout_url = response.headers["location"]
    paid = emulator.pay(checkout_url, DECLINED)
    assert paid.status_code == 402
    assert "Your card was declined." in paid.text
    _, subscription = await customer_of(session, "declined@example.com")
    assert subscription.plan_slug == "free"
    assert subscription.stripe_subscription_id is None


async def _paid_for_a_pack(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator, email: str
) -> tuple[Customer, int, str]:
    """A new user who paid for the 100 AI requests pack (no webhook forwarded yet): the
    customer, the emulator's delivery mark before paying, and the success page's path."""
    await login_new_user(client, email)
    response = await post_form(client, "/billing/credits/checkout", {"pack": "ai_100"})
    assert response.status_code == 303, response.text
    customer, _ = await customer_of(session, email)
    mark = emulator.mark()
    paid = emulator.pay(response.headers["location"])
    assert paid.status_code == 303
    return customer, mark, paid.headers["location"].replace("http://testserver.local", "")


async def test_credit_pack_is_granted_once(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator, services: Services
) -> None:
    customer, mark, success = await _paid_for_a_pack(
        client, session, emulator, "credits@example.com"
    )
    session_id = success.split("session_id=")[1]
    # While waiting, the page says where it will go: the credits page, not billing.
    waiting = await client.get(success)
    assert 'data-state="processing"' in waiting.text
    assert "then returns to credits;" in waiting.text
    assert 'href="/billing/credits" data-testid="back-to-billing">Go to credits<' in waiting.text
    deliveries = await wait_for_events(
        emulator, customer.stripe_customer_id, {"checkout.session.completed"}, after=mark
    )
    # Delivered twice, and replayed by an admin: still one grant.
    await forward(client, deliveries + deliveries)
    await session.rollback()
    replayed = next(
        e
        for e in await session.scalars(select(StripeEvent))
        if e.type == "checkout.session.completed" and e.object_id == session_id
    )
    row = await services.events.replay(replayed.stripe_event_id)
    assert row.status == "processed" and row.attempts == 2

    partial = await client.get(
        f"/billing/checkout/status?session_id={session_id}", headers={"HX-Request": "true"}
    )
    assert 'data-state="done"' in partial.text
    assert 'data-testid="credits-balance">100<' in partial.text
    customer, _ = await customer_of(session, "credits@example.com")
    balances = await services.metering.balances_for(customer)
    assert next(b for b in balances if b.code == "ai_requests").credits == 100
    invoices = list(
        await session.scalars(select(Invoice).where(Invoice.customer_id == customer.id))
    )
    assert [(inv.status, inv.total) for inv in invoices] == [("paid", 1000)]


async def test_stripe_error_is_a_flash_not_a_500(
    client: AsyncTestClient[Litestar], emulator: Emulator
) -> None:
    await login_new_user(client, "badplan@example.com")
    response = await post_form(client, "/billing/checkout", {"plan": "nope", "interval": "month"})
    assert response.status_code == 303
    page = await client.get(response.headers["location"])
    assert any("Unknown plan" in text for text in flashes(page.text)), page.text


NOSCRIPT_REFRESH = (
    '<noscript><meta http-equiv="refresh" content="5; url=/billing/checkout/success?session_id='
)


async def test_without_javascript_the_pending_page_refreshes_itself_until_done(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    """Nothing polls without JavaScript: while pending, a <noscript> refresh reloads the page
    and a plain link checks again; the final page neither refreshes nor polls."""
    customer, mark, success = await _paid_for_a_pack(client, session, emulator, "nojs@example.com")
    session_id = success.split("session_id=")[1]

    pending = await client.get(success)
    assert 'data-state="processing"' in pending.text
    head = pending.text.split("</head>", 1)[0]  # in <head>: htmx never swaps it into a page
    assert f"{NOSCRIPT_REFRESH}{session_id}" in head
    assert f'href="/billing/checkout/success?session_id={session_id}&amp;since=' in pending.text
    assert 'data-testid="checkout-check-again"' in pending.text
    partial = await client.get(
        f"/billing/checkout/status?session_id={session_id}", headers={"HX-Request": "true"}
    )
    assert 'data-state="processing"' in partial.text
    assert "<noscript>" not in partial.text  # the polled partial carries no refresh
    assert 'data-testid="checkout-slow"' not in partial.text
    # Polls carry when the wait began: after 30 s the page says it takes long (and keeps
    # its one link to billing); a made-up start counts from now.
    began = int(utcnow().timestamp()) - 40
    slow = await client.get(
        f"/billing/checkout/status?session_id={session_id}&since={began}",
        headers={"HX-Request": "true"},
    )
    assert 'data-testid="checkout-slow"' in slow.text and f"since={began}" in slow.text
    assert 'data-testid="back-to-billing"' in slow.text
    junk = await client.get(
        f"/billing/checkout/status?session_id={session_id}&since=later",
        headers={"HX-Request": "true"},
    )
    assert junk.status_code == 200 and 'data-testid="checkout-slow"' not in junk.text

    deliveries = await wait_for_events(
        emulator, customer.stripe_customer_id, {"checkout.session.completed"}, after=mark
    )
    await forward(client, deliveries)

    done = await client.get(success)
    assert 'data-state="done"' in done.text
    head = done.text.split("</head>", 1)[0]  # the final page returns to credits by itself
    assert '<noscript><meta http-equiv="refresh" content="3; url=/billing/credits"' in head
    assert "checkout/success" not in head
    assert "hx-trigger" not in done.text
    assert 'data-testid="checkout-check-again"' not in done.text
