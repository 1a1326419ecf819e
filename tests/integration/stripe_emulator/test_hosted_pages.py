"""Checkout, billing portal and invoice pages, driven over plain HTTP like a browser would."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.integration.stripe_emulator.conftest import Receiver
from tests.integration.stripe_emulator.helpers import customer_with_card, monthly_price, unique

VISA = {"card_number": "4242 4242 4242 4242", "exp_date": "12 / 34", "cvc": "123"}
SUCCESS = "https://portal.test/billing/success?session={CHECKOUT_SESSION_ID}"
CANCEL = "https://portal.test/billing/plans"


def _subscription_session(client: stripe.StripeClient, **extra: object) -> stripe.checkout.Session:
    customer = client.v1.customers.create(params={"email": f"{unique('buyer')}@example.com"})
    price = monthly_price(client, 2500)
    return client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": SUCCESS,
            "cancel_url": CANCEL,
            **extra,
        }
    )


def test_checkout_page_shows_the_form(client: stripe.StripeClient) -> None:
    session = _subscription_session(client)
    assert session.id.startswith("cs_test_")
    assert session.status == "open"
    assert session.amount_total == 2500
    page = httpx.get(session.url)
    assert page.status_code == 200
    for needle in (
        'name="card_number"',
        'name="exp_date"',
        'name="cvc"',
        ">Subscribe</button>",
        'data-testid="checkout-amount"',
        "25.00 USD",
        "Subscribe",
        CANCEL,
    ):
        assert needle in page.text


@pytest.mark.parametrize(
    ("card", "message", "decline_code"),
    [
        ("4000 0000 0000 0002", "Your card was declined.", "generic_decline"),
        ("4000 0000 0000 9995", "Your card has insufficient funds.", "insufficient_funds"),
    ],
)
def test_declined_cards_rerender_and_change_nothing(
    client: stripe.StripeClient, card: str, message: str, decline_code: str
) -> None:
    session = _subscription_session(client)
    response = httpx.post(session.url, data={**VISA, "card_number": card})
    assert response.status_code == 402
    assert 'data-testid="checkout-error"' in response.text
    assert message in response.text
    after = client.v1.checkout.sessions.retrieve(session.id)
    assert after.status == "open"
    assert after.subscription is None
    assert client.v1.subscriptions.list(params={"customer": session.customer}).data == []
    assert client.v1.payment_methods.list(params={"customer": session.customer}).data == []


def test_subscription_checkout_completes(client: stripe.StripeClient, receiver: Receiver) -> None:
    session = _subscription_session(client, metadata={"user": "7"})
    response = httpx.post(session.url, data=VISA)
    assert response.status_code == 303
    assert response.headers["location"] == SUCCESS.replace("{CHECKOUT_SESSION_ID}", session.id)

    done = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["subscription", "line_items"]}
    )
    assert done.status == "complete"
    assert done.payment_status == "paid"
    assert done.subscription.status == "active"
    assert done.line_items.data[0].amount_total == 2500
    customer = client.v1.customers.retrieve(session.customer)
    pm_id = customer.invoice_settings.default_payment_method
    assert pm_id and done.subscription.default_payment_method == pm_id
    invoice = client.v1.invoices.retrieve(done.invoice)
    assert invoice.status == "paid" and invoice.amount_paid == 2500

    event = receiver.wait_for_event("checkout.session.completed", lambda o: o["id"] == session.id)
    assert event["data"]["object"]["subscription"] == done.subscription.id
    assert event["data"]["object"]["metadata"] == {"user": "7"}
    for kind in ("customer.subscription.created", "invoice.paid"):
        receiver.wait_for_event(kind, lambda o: o.get("customer") == session.customer)
    receiver.wait_for_event("payment_method.attached", lambda o: o["id"] == pm_id)

    again = httpx.get(session.url)
    assert "complete" in again.text


def test_trial_checkout_charges_nothing(client: stripe.StripeClient) -> None:
    session = _subscription_session(client, subscription_data={"trial_period_days": 14})
    assert session.amount_total == 0
    assert httpx.post(session.url, data=VISA).status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription"]})
    assert done.payment_status == "no_payment_required"
    assert done.subscription.status == "trialing"
    assert done.subscription.trial_end - done.subscription.trial_start == 14 * 86400
    assert client.v1.invoices.retrieve(done.invoice).amount_paid == 0


def test_payment_mode_checkout(client: stripe.StripeClient, receiver: Receiver) -> None:
    customer = client.v1.customers.create(params={"email": "topup@example.com"})
    product = client.v1.products.create(params={"name": "1000 credits"})
    price = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 900}
    )
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 2}],
            "success_url": SUCCESS,
            "cancel_url": CANCEL,
            "invoice_creation": {"enabled": True},
            "payment_intent_data": {"metadata": {"pack": "1000"}},
        }
    )
    page = httpx.get(session.url)
    assert "1000 credits" in page.text and "18.00 USD" in page.text
    assert httpx.post(session.url, data=VISA).status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert done.payment_status == "paid"
    assert done.payment_intent.status == "succeeded"
    assert done.payment_intent.amount == 1800
    assert done.payment_intent.metadata["pack"] == "1000"
    assert client.v1.invoices.retrieve(done.invoice).status == "paid"
    receiver.wait_for_event("payment_intent.succeeded", lambda o: o["id"] == done.payment_intent.id)


def test_setup_mode_checkout(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "setup@example.com"})
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "customer": customer.id,
            "currency": "usd",
            "success_url": SUCCESS,
            "cancel_url": CANCEL,
        }
    )
    assert ">Save card</button>" in httpx.get(session.url).text  # nothing is paid here
    assert httpx.post(session.url, data=VISA).status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.payment_status == "no_payment_required"
    intent = client.v1.setup_intents.retrieve(done.setup_intent)
    assert intent.status == "succeeded"
    pm = client.v1.payment_methods.retrieve(intent.payment_method)
    assert pm.customer == customer.id


def test_checkout_validation_errors(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.checkout.sessions.create(params={"success_url": SUCCESS})
    assert missing.value.param == "mode"
    with pytest.raises(stripe.InvalidRequestError) as unknown_price:
        client.v1.checkout.sessions.create(
            params={"mode": "subscription", "line_items": [{"price": "price_nope"}]}
        )
    assert unknown_price.value.code == "resource_missing"


async def test_billing_portal(client: stripe.StripeClient) -> None:
    customer, _ = customer_with_card(client)
    price = monthly_price(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    portal = await client.v1.billing_portal.sessions.create_async(
        params={"customer": customer.id, "return_url": "https://portal.test/billing"}
    )
    assert portal.id.startswith("bps_")
    async with httpx.AsyncClient() as http:
        page = await http.get(portal.url)
        assert page.status_code == 200
        assert 'href="https://portal.test/billing"' in page.text
        assert "•••• 4242" in page.text

        cancel = await http.post(f"{portal.url}/subscriptions/{sub.id}/cancel")
        assert cancel.status_code == 303
        assert client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is True

        added = await http.post(
            f"{portal.url}/payment_methods",
            data={
                "card_number": "5555 5555 5555 4444",
                "exp_date": "01/33",
                "cvc": "123",
            },
        )
        assert added.status_code == 303
        declined = await http.post(
            f"{portal.url}/payment_methods",
            data={
                "card_number": "4000 0000 0000 0002",
                "exp_date": "01/33",
                "cvc": "123",
            },
        )
        assert declined.status_code == 400
        assert "Your card was declined." in declined.text
    cards = client.v1.payment_methods.list(params={"customer": customer.id})
    assert sorted(p.card.last4 for p in cards.data) == ["4242", "4444"]


def test_invoice_pages(client: stripe.StripeClient) -> None:
    customer, _ = customer_with_card(client)
    price = monthly_price(client, 4200)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    html = httpx.get(invoice.hosted_invoice_url)
    assert html.status_code == 200 and "42.00 USD" in html.text
    pdf = httpx.get(invoice.invoice_pdf)
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")


def test_checkout_without_customer_creates_one(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    email = f"{unique('new')}@example.com"
    price = monthly_price(client, 1200)
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer_email": email,
            "line_items": [{"price": price.id}],
            "success_url": SUCCESS,
        }
    )
    assert session.customer is None
    assert httpx.post(session.url, data=VISA).status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["customer"]})
    assert done.customer.email == email
    assert done.customer_details.email == email
    receiver.wait_for_event("customer.created", lambda o: o["email"] == email)
