"""Invoices voided or marked uncollectible (`invoice.voided`, `invoice.marked_uncollectible`,
`invoice.updated`); card details changing (`payment_method.updated`,
`payment_method.automatically_updated`)."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.integration.stripe_emulator.conftest import Receiver
from tests.integration.stripe_emulator.helpers import customer_with_card, monthly_price
from tests.integration.stripe_emulator.signed import signed_event


def _open_invoice(client: stripe.StripeClient) -> stripe.Invoice:
    customer, _ = customer_with_card(client, "pm_card_chargeCustomerFail")
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": monthly_price(client).id}],
            "expand": ["latest_invoice"],
        }
    )
    assert sub.latest_invoice.status == "open"
    return sub.latest_invoice


def test_void_an_open_invoice(client: stripe.StripeClient, receiver: Receiver) -> None:
    invoice = _open_invoice(client)
    voided = client.v1.invoices.void_invoice(invoice.id)
    assert voided.status == "void" and voided.status_transitions.voided_at
    event = signed_event(receiver, "invoice.voided", lambda o: o["id"] == invoice.id)
    assert event["data"]["object"]["status"] == "void"
    updated = signed_event(
        receiver, "invoice.updated", lambda o: o["id"] == invoice.id and o["status"] == "void"
    )
    assert updated["data"]["previous_attributes"]["status"] == "open"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(invoice.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.pay(invoice.id)


def test_mark_uncollectible_then_void(client: stripe.StripeClient, receiver: Receiver) -> None:
    invoice = _open_invoice(client)
    marked = client.v1.invoices.mark_uncollectible(invoice.id)
    assert marked.status == "uncollectible"
    assert marked.status_transitions.marked_uncollectible_at
    signed_event(receiver, "invoice.marked_uncollectible", lambda o: o["id"] == invoice.id)
    updated = signed_event(
        receiver,
        "invoice.updated",
        lambda o: o["id"] == invoice.id and o["status"] == "uncollectible",
    )
    assert updated["data"]["previous_attributes"]["status"] == "open"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.mark_uncollectible(invoice.id)
    assert client.v1.invoices.void_invoice(invoice.id).status == "void"


def test_a_paid_invoice_cannot_be_voided(client: stripe.StripeClient) -> None:
    customer, _ = customer_with_card(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": monthly_price(client).id}]}
    )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(str(sub.latest_invoice))


def test_card_expiry_update(client: stripe.StripeClient, receiver: Receiver) -> None:
    _, pm = customer_with_card(client)
    updated = client.v1.payment_methods.update(
        pm.id, params={"card": {"exp_month": 3, "exp_year": 2040}}
    )
    assert (updated.card.exp_month, updated.card.exp_year) == (3, 2040)
    event = signed_event(
        receiver,
        "payment_method.updated",
        lambda o: o["id"] == pm.id and o["card"]["exp_year"] == 2040,
    )
    assert event["data"]["previous_attributes"] == {"card": {"exp_month": 12, "exp_year": 2034}}
    with pytest.raises(stripe.CardError):
        client.v1.payment_methods.update(pm.id, params={"card": {"exp_month": 13}})


def test_card_account_updater(
    client: stripe.StripeClient, receiver: Receiver, emulator: str
) -> None:
    _, pm = customer_with_card(client)
    response = httpx.post(
        f"{emulator}/_emulator/payment_methods/{pm.id}/card_update",
        data={"number": "4000056655665556", "exp_month": "8", "exp_year": "2031"},
    )
    assert response.status_code == 200
    card = client.v1.payment_methods.retrieve(pm.id).card
    assert (card.last4, card.exp_month, card.exp_year) == ("5556", 8, 2031)
    event = signed_event(
        receiver, "payment_method.automatically_updated", lambda o: o["id"] == pm.id
    )
    assert event["data"]["object"]["card"]["last4"] == "5556"
    assert event["data"]["previous_attributes"]["card"] == {
        "exp_month": 12,
        "exp_year": 2034,
        "last4": "4242",
    }
    assert "_number" not in event["data"]["object"]
