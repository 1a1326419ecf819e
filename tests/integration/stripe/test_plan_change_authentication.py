"""Strong customer authentication (3-D Secure) on the emulator: a plan change whose payment the
customer's bank must confirm waits for it (Stripe's pending update) and applies only once paid;
a renewal that needs it shows a banner on every billing page and sends one email."""

from __future__ import annotations

import html
import json
import re

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import Invoice
from app.billing.plan_change import PENDING_CHANGE
from app.notifications.models import EmailOutboxMessage
from app.stripe.gateway import StripeGateway
from tests.integration.stripe.conftest import (
    VISA,
    Emulator,
    change_plan,
    customer_of,
    flashes,
    subscribe,
)
from tests.integration.stripe.test_account_events import twice_out_of_order

THREE_D_SECURE = {**VISA, "card_number": "4000 0027 6000 3184"}  # asks on every payment


async def _subscribe_with_3ds_card(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    email: str,
    *,
    trial: bool = False,
) -> str:
    """A new user on Pro (paying, or in its trial) with a card that always asks for 3-D
    Secure, authenticated in Checkout; returns the Stripe customer id."""

    def pay(checkout_url: str) -> None:
        step = emulator.pay(checkout_url, THREE_D_SECURE)
        assert step.status_code == 200 and 'data-testid="authentication"' in step.text, step.text
        done = httpx.post(f"{checkout_url}/authenticate", data={"action": "complete"}, timeout=10)
        assert done.status_code == 303, done.text

    return await subscribe(
        client, session, emulator, email, trial=trial, deliver=twice_out_of_order, pay=pay
    )


def _about(emulator: Emulator, cus: str, types: set[str], after: int) -> list[tuple[bytes, str]]:
    """Deliveries since `after` naming the customer anywhere (invoices, payment intents...)."""
    from tests.support import wait_until

    def ready() -> list[tuple[bytes, str]] | None:
        found = emulator.deliveries_for(lambda e: cus in json.dumps(e), after=after)
        kinds = {json.loads(body)["type"] for body, _ in found}
        return found if types <= kinds else None

    return wait_until(ready, 10, f"webhooks {sorted(types)}")


def _banners(html: str) -> list[str]:
    found = re.findall(
        r'data-testid="(pending-change|payment-action-banner)"[^>]*>(.*?)</div>', html, re.S
    )
    return [
        f"{testid}: " + re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", text)).strip()
        for testid, text in found
    ]


async def _emails(session: AsyncSession, customer_id: int) -> list[str]:
    """The customer's emails about payments that did not go through."""
    await session.rollback()
    rows = await session.scalars(
        select(EmailOutboxMessage.kind)
        .where(
            EmailOutboxMessage.customer_id == customer_id,
            EmailOutboxMessage.kind.in_(("payment_action_required", "payment_failed")),
        )
        .order_by(EmailOutboxMessage.id)
    )
    return list(rows)


async def _authenticate(emulator: Emulator, hosted_url: str, action: str) -> None:
    page = httpx.get(hosted_url, timeout=10)
    assert 'data-testid="authentication"' in page.text, page.text
    done = httpx.post(f"{hosted_url}/authenticate", data={"action": action}, timeout=10)
    assert done.status_code in (200, 303), done.text


async def _pending_upgrade(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
    email: str,
    *,
    trial: bool = False,
) -> tuple[str, str, int]:
    """Pro → Business with the 3-D Secure card: (customer id, hosted invoice URL, mark)."""
    cus = await _subscribe_with_3ds_card(client, session, emulator, email, trial=trial)
    status = "trialing" if trial else "active"
    mark = emulator.mark()
    confirmed = await change_plan(client, "business")
    assert confirmed.status_code == 303
    hosted_url = confirmed.headers["location"]
    assert hosted_url.startswith(f"{emulator.url}/invoice/in_"), hosted_url

    # Nothing is granted yet: our plan (and its quotas) and Stripe's items are still Pro.
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.status) == ("pro", status)
    assert (row.pending_plan_slug, row.pending_interval) == ("business", "month")
    assert row.stripe_subscription_id
    remote = await gateway.retrieve_subscription(row.stripe_subscription_id)
    assert [i["price"]["lookup_key"] for i in remote["items"]["data"]] == ["plan_pro_monthly"]
    assert remote["pending_update"]

    page = await client.get("/billing")
    assert any("Business" in text and "bank" in text for text in flashes(page.text)), flashes(
        page.text
    )
    banners = _banners(page.text)
    assert "pending-change: Your change to Business is waiting for your bank's confirmation." in (
        " ".join(banners)
    ), banners
    assert f'href="{hosted_url}"' in page.text

    # One change at a time: another review (or the same one again) leads back to the billing
    # page, and nothing more is invoiced.
    invoices = len(await gateway.list_invoices(cus))
    again = await client.get(
        "/billing/subscription/review",
        params={"plan": "business", "interval": "year"},
        follow_redirects=False,
    )
    assert (again.status_code, again.headers["location"]) == (303, "/billing")
    assert PENDING_CHANGE in map(html.unescape, flashes((await client.get("/billing")).text))
    assert len(await gateway.list_invoices(cus)) == invoices
    return cus, hosted_url, mark


async def test_an_upgrade_that_needs_authentication_applies_only_once_paid(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    email = "sca-upgrade@example.com"
    cus, hosted_url, mark = await _pending_upgrade(client, session, emulator, gateway, email)
    customer, _ = await customer_of(session, email)
    # The events so far (the open invoice, its payment waiting): still pending, and one email
    # asking to confirm, none saying the payment failed.
    waiting = _about(emulator, cus, {"invoice.payment_action_required"}, mark)
    await twice_out_of_order(client, waiting)
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.pending_plan_slug) == ("pro", "business")
    assert await _emails(session, customer.id) == ["payment_action_required"]
    invoices_page = await client.get("/billing/invoices")  # every billing page says so
    assert any(
        b.startswith("payment-action-banner: Your bank needs you to confirm a payment of $")
        for b in _banners(invoices_page.text)
    ), _banners(invoices_page.text)

    await _authenticate(emulator, hosted_url, "complete")
    paid = _about(emulator, cus, {"invoice.paid", "customer.subscription.updated"}, mark)
    await twice_out_of_order(client, paid)
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.status, row.pending_plan_slug) == ("business", "active", None)
    assert _banners((await client.get("/billing")).text) == []
    # One invoice for the change, paid once.
    invoices = [
        i for i in await gateway.list_invoices(cus) if i["billing_reason"] == "subscription_update"
    ]
    assert [(i["status"], i["hosted_invoice_url"]) for i in invoices] == [("paid", hosted_url)]


async def test_leaving_a_trial_that_needs_authentication_ends_it_only_once_paid(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    """Pro's trial → Business (no trial): its first month is charged now, once the bank
    confirms; until then the trial goes on."""
    email = "sca-trial-upgrade@example.com"
    cus, hosted_url, mark = await _pending_upgrade(
        client, session, emulator, gateway, email, trial=True
    )
    invoice = next(
        i for i in await gateway.list_invoices(cus) if i["hosted_invoice_url"] == hosted_url
    )
    assert (invoice["status"], invoice["amount_due"]) == ("open", 14_900)
    await _authenticate(emulator, hosted_url, "complete")
    paid = _about(emulator, cus, {"invoice.paid", "customer.subscription.updated"}, mark)
    await twice_out_of_order(client, paid)
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.status, row.trial_end, row.pending_plan_slug) == (
        "business",
        "active",
        None,
        None,
    )


async def test_a_failed_authentication_leaves_the_plan_unchanged(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    email = "sca-upgrade-fails@example.com"
    cus, hosted_url, mark = await _pending_upgrade(client, session, emulator, gateway, email)
    customer, _ = await customer_of(session, email)
    await _authenticate(emulator, hosted_url, "fail")
    events = _about(
        emulator, cus, {"invoice.payment_action_required", "payment_intent.payment_failed"}, mark
    )
    await twice_out_of_order(client, events)
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.status, row.pending_plan_slug) == ("pro", "active", "business")
    sub_id = str(row.stripe_subscription_id)
    banners = _banners((await client.get("/billing")).text)
    assert any(b.startswith("pending-change:") for b in banners), banners
    assert any(b.startswith("payment-action-banner:") for b in banners), banners
    # The bank's refusal is no declined card: one email asking to confirm, no failure email.
    assert await _emails(session, customer.id) == ["payment_action_required"]
    remote = await gateway.retrieve_subscription(sub_id)
    assert [i["price"]["lookup_key"] for i in remote["items"]["data"]] == ["plan_pro_monthly"]

    # Never confirmed: after 23 hours Stripe discards the change and voids its invoice.
    expiry = emulator.mark()
    emulator.advance(days=1)
    lapsed = _about(emulator, cus, {"invoice.voided", "customer.subscription.updated"}, expiry)
    await twice_out_of_order(client, lapsed)
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.status, row.pending_plan_slug) == ("pro", "active", None)
    assert _banners((await client.get("/billing")).text) == []


async def test_a_renewal_that_needs_authentication_shows_a_banner_and_emails_once(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    email = "sca-renewal@example.com"
    cus = await _subscribe_with_3ds_card(client, session, emulator, email)
    customer, _ = await customer_of(session, email)
    customer_id = customer.id
    mark = emulator.mark()
    emulator.advance(days=32)  # the renewal is charged off-session: the bank wants the customer
    events = _about(emulator, cus, {"invoice.payment_action_required"}, mark)
    await twice_out_of_order(client, events)

    await session.rollback()
    invoice = await session.scalar(
        select(Invoice).where(
            Invoice.customer_id == customer_id, Invoice.billing_reason == "subscription_cycle"
        )
    )
    assert invoice is not None and invoice.status == "open" and invoice.hosted_invoice_url
    hosted_url = invoice.hosted_invoice_url
    for path in ("/billing", "/billing/invoices", "/billing/payment-methods", "/billing/upgrade"):
        page = await client.get(path)
        assert _banners(page.text) == [
            "payment-action-banner: Your bank needs you to confirm a payment of $29.00 — "
            "Confirm payment"
        ], (path, _banners(page.text))
        assert f'href="{hosted_url}"' in page.text
    dashboard = (await client.get("/billing")).text
    assert 'data-testid="past-due-banner"' not in dashboard  # not declined: the bank asks
    assert 'data-testid="plan-status">Payment to confirm<' in dashboard
    # Each event came twice: one email, with the link, and no "payment failed" one.
    assert await _emails(session, customer_id) == ["payment_action_required"]
    mail = await session.scalar(
        select(EmailOutboxMessage).where(
            EmailOutboxMessage.customer_id == customer_id,
            EmailOutboxMessage.kind == "payment_action_required",
        )
    )
    assert mail is not None
    assert mail.subject == "Your bank needs you to confirm a payment of $29.00"
    assert hosted_url in mail.text_body
    assert hosted_url in mail.html_body

    # Confirmed: the invoice is paid and the banner goes.
    await _authenticate(emulator, hosted_url, "complete")
    await twice_out_of_order(client, _about(emulator, cus, {"invoice.paid"}, mark))
    assert _banners((await client.get("/billing")).text) == []
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.status) == ("pro", "active")
