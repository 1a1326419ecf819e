"""Charges behind payments, refunds (`charge.refunded`, `refund.created`) and disputes opened by
Stripe's dispute test card (`charge.dispute.created`) and closed by the emulator's helper."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.integration.stripe_emulator.conftest import Receiver
from tests.integration.stripe_emulator.helpers import customer_with_card, monthly_price
from tests.integration.stripe_emulator.signed import signed_event


def _paid_subscription(
    client: stripe.StripeClient, card: str = "pm_card_visa", amount: int = 3000
) -> stripe.PaymentIntent:
    customer, _ = customer_with_card(client, card)
    price = monthly_price(client, amount)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price.id}],
            "expand": ["latest_invoice"],
        }
    )
    pi_id = sub.latest_invoice.payments.data[0].payment.payment_intent
    return client.v1.payment_intents.retrieve(pi_id)


def test_a_payment_has_a_charge(client: stripe.StripeClient, receiver: Receiver) -> None:
    pi = _paid_subscription(client)
    assert pi.latest_charge and pi.latest_charge.startswith("ch_")
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.object == "charge" and charge.status == "succeeded" and charge.paid
    assert charge.amount == charge.amount_captured == 3000
    assert charge.amount_refunded == 0 and charge.refunded is False
    assert charge.payment_intent == pi.id and charge.customer == pi.customer
    assert charge.payment_method_details.type == "card"
    assert charge.payment_method_details.card.last4 == "4242"
    listed = client.v1.charges.list(params={"payment_intent": pi.id})
    assert [c.id for c in listed.data] == [charge.id]
    signed_event(receiver, "charge.succeeded", lambda o: o["id"] == charge.id)


def test_partial_then_full_refund(client: stripe.StripeClient, receiver: Receiver) -> None:
    pi = _paid_subscription(client)
    first = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000})
    assert first.object == "refund" and first.status == "succeeded"
    assert first.amount == 1000 and first.charge == pi.latest_charge
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.amount_refunded == 1000 and charge.refunded is False

    event = signed_event(receiver, "charge.refunded", lambda o: o["id"] == charge.id)
    assert event["data"]["object"]["amount_refunded"] == 1000
    assert event["data"]["previous_attributes"] == {"amount_refunded": 0}
    created = signed_event(receiver, "refund.created", lambda o: o["id"] == first.id)
    assert created["data"]["object"]["payment_intent"] == pi.id

    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"charge": charge.id, "amount": 2001})
    assert too_much.value.code == "amount_too_large"

    rest = client.v1.refunds.create(params={"charge": charge.id, "reason": "requested_by_customer"})
    assert rest.amount == 2000 and rest.reason == "requested_by_customer"
    charge = client.v1.charges.retrieve(charge.id)
    assert charge.amount_refunded == 3000 and charge.refunded is True
    signed_event(
        receiver, "charge.refunded", lambda o: o["id"] == charge.id and o["refunded"] is True
    )
    refunds = client.v1.refunds.list(params={"payment_intent": pi.id})
    assert [r.id for r in refunds.data] == [rest.id, first.id]

    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create(params={"charge": charge.id})
    assert again.value.code == "charge_already_refunded"


def test_refund_needs_a_payment(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create(params={})
    assert exc.value.code == "parameter_missing"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create(params={"payment_intent": "pi_nope"})
    assert exc.value.code == "resource_missing"


def test_dispute_card_opens_a_dispute_and_the_helper_closes_it(
    client: stripe.StripeClient, receiver: Receiver, emulator: str
) -> None:
    pi = _paid_subscription(client, "pm_card_createDispute", 4500)
    assert pi.status == "succeeded"
    created = signed_event(
        receiver, "charge.dispute.created", lambda o: o["payment_intent"] == pi.id
    )
    dispute = created["data"]["object"]
    assert dispute["object"] == "dispute" and dispute["id"].startswith("dp_")
    assert dispute["status"] == "needs_response" and dispute["reason"] == "fraudulent"
    assert dispute["amount"] == 4500 and dispute["charge"] == pi.latest_charge
    assert client.v1.charges.retrieve(pi.latest_charge).disputed is True
    assert client.v1.disputes.retrieve(dispute["id"]).status == "needs_response"

    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create(params={"payment_intent": pi.id})
    assert exc.value.code == "charge_disputed"

    response = httpx.post(
        f"{emulator}/_emulator/disputes/{dispute['id']}/close", data={"status": "lost"}
    )
    assert response.status_code == 200 and response.json()["status"] == "lost"
    closed = signed_event(receiver, "charge.dispute.closed", lambda o: o["id"] == dispute["id"])
    assert closed["data"]["object"]["status"] == "lost"
    assert closed["data"]["previous_attributes"] == {"status": "needs_response"}
    again = httpx.post(
        f"{emulator}/_emulator/disputes/{dispute['id']}/close", data={"status": "won"}
    )
    assert again.status_code == 400


def test_dispute_won(client: stripe.StripeClient, receiver: Receiver, emulator: str) -> None:
    pi = _paid_subscription(client, "pm_card_createDispute")
    dispute = client.v1.disputes.list(params={"payment_intent": pi.id}).data[0]
    httpx.post(f"{emulator}/_emulator/disputes/{dispute.id}/close", data={"status": "won"})
    signed_event(receiver, "charge.dispute.closed", lambda o: o["id"] == dispute.id)
    signed_event(receiver, "charge.dispute.funds_reinstated", lambda o: o["id"] == dispute.id)
    assert client.v1.disputes.retrieve(dispute.id).status == "won"
