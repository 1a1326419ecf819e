"""SEPA Direct Debit at Checkout: the session completes unpaid, then the emulator's settle
helper sends `checkout.session.async_payment_succeeded` or `async_payment_failed`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from tests.integration.stripe_emulator.conftest import Receiver
from tests.integration.stripe_emulator.helpers import unique
from tests.integration.stripe_emulator.signed import signed_event


def _sepa_session(client: stripe.StripeClient) -> stripe.checkout.Session:
    customer = client.v1.customers.create(params={"email": f"{unique('sepa')}@example.com"})
    product = client.v1.products.create(params={"name": unique("Pack")})
    price = client.v1.prices.create(
        params={"product": product.id, "currency": "eur", "unit_amount": 1000}
    )
    return client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
            "allowed_payment_method_types": ["card", "sepa_debit"],
            "invoice_creation": {"enabled": True},
            "success_url": "http://example.com/ok?session_id={CHECKOUT_SESSION_ID}",
        }
    )


def _pay(session: stripe.checkout.Session, iban: str) -> httpx.Response:
    page = httpx.get(session.url)
    assert 'data-testid="checkout-sepa-form"' in page.text
    return httpx.post(session.url, data={"iban": iban, "name": "Jenny Rosen"})


def test_sepa_payment_settles_later(
    client: stripe.StripeClient, receiver: Receiver, emulator: str
) -> None:
    session = _sepa_session(client)
    assert _pay(session, "DE89 3704 0044 0532 0130 00").status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.status == "complete" and done.payment_status == "unpaid"
    pi = client.v1.payment_intents.retrieve(str(done.payment_intent))
    assert pi.status == "processing" and pi.payment_method_types == ["sepa_debit"]
    pm = client.v1.payment_methods.retrieve(str(pi.payment_method))
    assert pm.type == "sepa_debit" and pm.sepa_debit.last4 == "3000"
    completed = signed_event(
        receiver, "checkout.session.completed", lambda o: o["id"] == session.id
    )
    assert completed["data"]["object"]["payment_status"] == "unpaid"

    response = httpx.post(f"{emulator}/_emulator/checkout/sessions/{session.id}/settle")
    assert response.status_code == 200
    event = signed_event(
        receiver, "checkout.session.async_payment_succeeded", lambda o: o["id"] == session.id
    )
    obj: dict[str, Any] = event["data"]["object"]
    assert obj["payment_status"] == "paid" and obj["invoice"]
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"
    assert client.v1.invoices.retrieve(obj["invoice"]).status == "paid"
    signed_event(receiver, "payment_intent.succeeded", lambda o: o["id"] == pi.id)
    again = httpx.post(f"{emulator}/_emulator/checkout/sessions/{session.id}/settle")
    assert again.status_code == 400


def test_sepa_payment_fails_later(
    client: stripe.StripeClient, receiver: Receiver, emulator: str
) -> None:
    session = _sepa_session(client)
    _pay(session, "DE62370400440532013001")
    httpx.post(f"{emulator}/_emulator/checkout/sessions/{session.id}/settle")
    event = signed_event(
        receiver, "checkout.session.async_payment_failed", lambda o: o["id"] == session.id
    )
    assert event["data"]["object"]["payment_status"] == "unpaid"
    pi = client.v1.payment_intents.retrieve(str(event["data"]["object"]["payment_intent"]))
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.code == "insufficient_funds"
    assert client.v1.charges.retrieve(str(pi.latest_charge)).status == "failed"


def test_sepa_needs_a_valid_iban_and_euros(client: stripe.StripeClient) -> None:
    session = _sepa_session(client)
    response = _pay(session, "DE00 0000 0000 0000 0000 00")
    assert response.status_code == 400 and "IBAN" in response.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"

    product = client.v1.products.create(params={"name": unique("Pack")})
    usd = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 1000}
    )
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [{"price": usd.id, "quantity": 1}],
                "allowed_payment_method_types": ["sepa_debit"],
                "success_url": "http://example.com/ok",
            }
        )
    assert exc.value.param == "allowed_payment_method_types"
