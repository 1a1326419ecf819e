"""Credit notes on paid and open invoices (`credit_note.created`, `invoice.updated`), with a
refund of the invoice's charge or credit to the customer's balance."""

from __future__ import annotations

import pytest
import stripe

from tests.integration.stripe_emulator.conftest import Receiver
from tests.integration.stripe_emulator.helpers import customer_with_card, monthly_price
from tests.integration.stripe_emulator.signed import signed_event


def _invoice(client: stripe.StripeClient, card: str = "pm_card_visa") -> stripe.Invoice:
    customer, _ = customer_with_card(client, card)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": monthly_price(client, 3000).id}],
            "expand": ["latest_invoice"],
        }
    )
    return sub.latest_invoice


def test_credit_note_with_a_partial_refund(client: stripe.StripeClient, receiver: Receiver) -> None:
    invoice = _invoice(client)
    assert invoice.status == "paid"
    line = invoice.lines.data[0]
    note = client.v1.credit_notes.create(
        params={
            "invoice": invoice.id,
            "lines": [{"type": "invoice_line_item", "invoice_line_item": line.id, "amount": 1000}],
            "refund_amount": 1000,
            "reason": "product_unsatisfactory",
        }
    )
    assert note.object == "credit_note" and note.status == "issued"
    assert note.type == "post_payment" and note.total == 1000 and note.invoice == invoice.id
    assert note.lines.data[0].invoice_line_item == line.id
    refund_id = note.refunds[0].refund
    refund = client.v1.refunds.retrieve(refund_id)
    assert refund.amount == 1000
    pi = client.v1.payment_intents.retrieve(refund.payment_intent)
    assert client.v1.charges.retrieve(pi.latest_charge).amount_refunded == 1000

    created = signed_event(receiver, "credit_note.created", lambda o: o["id"] == note.id)
    assert created["data"]["object"]["refunds"][0]["refund"] == refund_id
    signed_event(receiver, "charge.refunded", lambda o: o["id"] == pi.latest_charge)
    updated = signed_event(
        receiver,
        "invoice.updated",
        lambda o: o["id"] == invoice.id and o["post_payment_credit_notes_amount"] == 1000,
    )
    assert updated["data"]["previous_attributes"] == {"post_payment_credit_notes_amount": 0}

    listed = client.v1.credit_notes.list(params={"invoice": invoice.id})
    assert [n.id for n in listed.data] == [note.id]
    assert client.v1.invoices.retrieve(invoice.id).post_payment_credit_notes_amount == 1000

    with pytest.raises(stripe.InvalidRequestError):  # only 2000 left to credit
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 2500})


def test_credit_note_to_the_customer_balance(client: stripe.StripeClient) -> None:
    invoice = _invoice(client)
    note = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 500})
    assert note.customer_balance_transaction and not note.refunds
    assert client.v1.customers.retrieve(str(invoice.customer)).balance == -500


def test_credit_note_on_an_open_invoice(client: stripe.StripeClient, receiver: Receiver) -> None:
    invoice = _invoice(client, "pm_card_chargeCustomerFail")
    assert invoice.status == "open"
    partial = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 1000})
    assert partial.type == "pre_payment"
    after = client.v1.invoices.retrieve(invoice.id)
    assert after.amount_remaining == 2000 and after.pre_payment_credit_notes_amount == 1000
    with pytest.raises(stripe.InvalidRequestError):  # all of it lowers what is due
        client.v1.credit_notes.create(
            params={"invoice": invoice.id, "amount": 500, "refund_amount": 500}
        )
    client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 2000})
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    signed_event(receiver, "invoice.paid", lambda o: o["id"] == invoice.id)
