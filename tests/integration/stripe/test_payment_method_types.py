"""Payment methods other than cards (SEPA Direct Debit, US bank account, Link) saved at
Stripe: mirrored with their type and label, listed on /billing/payment-methods and the
dashboard, made the default, removed; the last payment method of a paid plan, of any type,
stays."""

from __future__ import annotations

import stripe
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import PaymentMethod
from app.billing.rules import KEEP_LAST_CARD
from tests.integration.stripe.conftest import (
    Emulator,
    flashes,
    forward,
    post_form,
    subscribe,
    wait_for_events,
)


def _sdk(emulator: Emulator) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_x", base_addresses={"api": emulator.url})


def _attach_others(emulator: Emulator, cus: str) -> dict[str, str]:
    """A SEPA debit, a US bank account and a Link payment method attached at Stripe (as
    Checkout saves them); their ids by type."""
    client = _sdk(emulator)
    created = [
        client.v1.payment_methods.create(
            params={
                "type": "sepa_debit",
                "sepa_debit": {"iban": "DE89370400440532013000"},
                "billing_details": {"name": "Jenny Rosen", "email": "jenny@example.com"},
            }
        ),
        client.v1.payment_methods.create(
            params={
                "type": "us_bank_account",
                "us_bank_account": {
                    "routing_number": "110000000",
                    "account_number": "000123456789",
                },
                "billing_details": {"name": "Jenny Rosen"},
            }
        ),
        client.v1.payment_methods.create(
            params={"type": "link", "billing_details": {"email": "jenny@example.com"}}
        ),
    ]
    for pm in created:
        client.v1.payment_methods.attach(pm.id, params={"customer": cus})
    return {pm.type: pm.id for pm in created}


async def _rows(session: AsyncSession, cus_email: str) -> dict[str, PaymentMethod]:
    from tests.integration.stripe.conftest import customer_of

    customer, _ = await customer_of(session, cus_email)
    rows = await session.scalars(
        select(PaymentMethod).where(PaymentMethod.customer_id == customer.id)
    )
    return {row.type: row for row in rows}


async def test_other_types_are_mirrored_listed_made_default_and_removed(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    email = "sepa-and-friends@example.com"
    cus = await subscribe(client, session, emulator, email, trial=False)
    mark = emulator.mark()
    ids = _attach_others(emulator, cus)
    await forward(
        client, await wait_for_events(emulator, cus, {"payment_method.attached"}, after=mark)
    )

    rows = await _rows(session, email)
    assert set(rows) == {"card", "sepa_debit", "us_bank_account", "link"}
    assert rows["sepa_debit"].label == "SEPA Direct Debit •••• 3000"
    assert rows["us_bank_account"].label == "US bank account •••• 6789 (STRIPE TEST BANK)"
    assert rows["link"].label == "Link (jenny@example.com)"
    assert rows["card"].label == "Visa •••• 4242" and rows["card"].is_default

    page = (await client.get("/billing/payment-methods")).text
    assert '<h2 id="cards-title">Your payment methods</h2>' in page
    assert "<strong>SEPA Direct Debit</strong> •••• 3000" in page
    assert "<strong>US bank account</strong> •••• 6789" in page and "(STRIPE TEST BANK)" in page
    assert "<strong>Link</strong> (jenny@example.com)" in page
    assert 'Remove<span class="visually-hidden"> SEPA Direct Debit ending 3000</span>' in page

    # Make the SEPA debit the default: at Stripe (customer and subscription) and here.
    made = await post_form(client, f"/billing/payment-methods/{ids['sepa_debit']}/default")
    assert made.status_code == 303
    page = (await client.get("/billing/payment-methods")).text
    assert flashes(page) == ["SEPA Direct Debit •••• 3000 is now your default payment method."]
    stripe_customer = _sdk(emulator).v1.customers.retrieve(cus)
    assert stripe_customer.invoice_settings.default_payment_method == ids["sepa_debit"]
    subscription = _sdk(emulator).v1.subscriptions.list({"customer": cus}).data[0]
    assert subscription.default_payment_method == ids["sepa_debit"]
    rows = await _rows(session, email)
    assert rows["sepa_debit"].is_default and not rows["card"].is_default
    dashboard = (await client.get("/billing")).text
    default_block = dashboard[dashboard.index('data-testid="default-payment-method"') :][:300]
    assert "SEPA Direct Debit" in default_block and "•••• 3000" in default_block
    assert "Manage payment methods (4)" in dashboard

    # The confirm page names it; the card, the bank account and Link can go (others stay).
    confirm = (await client.get(f"/billing/payment-methods/{ids['link']}/remove")).text
    assert "Remove this payment method?" in confirm and "(jenny@example.com)" in confirm
    card_id = rows["card"].stripe_payment_method_id
    for pm_id, label in (
        (ids["link"], "Link (jenny@example.com)"),
        (ids["us_bank_account"], "US bank account •••• 6789 (STRIPE TEST BANK)"),
        (card_id, "Visa •••• 4242"),
    ):
        removed = await post_form(client, f"/billing/payment-methods/{pm_id}/remove")
        assert removed.status_code == 303
        page = (await client.get("/billing/payment-methods")).text
        assert flashes(page) == [f"{label} was removed."]
    left = _sdk(emulator).v1.customers.payment_methods.list(cus)
    assert [pm.id for pm in left.data] == [ids["sepa_debit"]]

    # The SEPA debit is the paid plan's only payment method now: it stays.
    page = (await client.get("/billing/payment-methods")).text
    assert 'data-testid="cannot-remove"' in page and "only payment method" in page
    refused = await post_form(client, f"/billing/payment-methods/{ids['sepa_debit']}/remove")
    assert refused.status_code == 303
    page = (await client.get("/billing/payment-methods")).text
    assert flashes(page) == [KEEP_LAST_CARD]
    assert len(_sdk(emulator).v1.customers.payment_methods.list(cus).data) == 1
    assert set(await _rows(session, email)) == {"sepa_debit"}


async def test_a_paid_plan_with_a_card_and_a_sepa_debit_may_drop_the_card(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    """The last-payment-method rule counts the SEPA debit: removing the card is allowed."""
    email = "card-then-sepa@example.com"
    cus = await subscribe(client, session, emulator, email, trial=False)
    mark = emulator.mark()
    client_sdk = _sdk(emulator)
    sepa = client_sdk.v1.payment_methods.create(
        params={"type": "sepa_debit", "sepa_debit": {"iban": "DE89370400440532013000"}}
    )
    client_sdk.v1.payment_methods.attach(sepa.id, params={"customer": cus})
    await forward(
        client, await wait_for_events(emulator, cus, {"payment_method.attached"}, after=mark)
    )
    card = (await _rows(session, email))["card"]
    page = (await client.get("/billing/payment-methods")).text
    assert 'data-testid="cannot-remove"' not in page
    removed = await post_form(
        client, f"/billing/payment-methods/{card.stripe_payment_method_id}/remove"
    )
    assert removed.status_code == 303
    page = (await client.get("/billing/payment-methods")).text
    assert flashes(page) == ["Visa •••• 4242 was removed."]
    # The SEPA debit became the default (at Stripe and here).
    rows = await _rows(session, email)
    assert set(rows) == {"sepa_debit"} and rows["sepa_debit"].is_default
    assert client_sdk.v1.customers.retrieve(cus).invoice_settings.default_payment_method == sepa.id
