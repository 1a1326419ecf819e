"""Invoice previews equal what the matching update invoices; credit goes to the customer's
balance and pays the next invoices."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.integration.stripe_emulator.conftest import Receiver
from tests.integration.stripe_emulator.helpers import customer_with_card, monthly_price, unique

DAY = 86400


def _clocked(
    client: stripe.StripeClient, amount: int = 3000
) -> tuple[stripe.test_helpers.TestClock, stripe.Customer, stripe.Subscription]:
    clock = client.v1.test_helpers.test_clocks.create(
        params={"frozen_time": int(time.time()), "name": unique("clock")}
    )
    customer, _ = customer_with_card(client, test_clock=clock.id)
    price = monthly_price(client, amount)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    return clock, customer, sub


def _halfway(client: stripe.StripeClient, clock_id: str, sub: stripe.Subscription) -> int:
    item = sub["items"].data[0]
    middle = (item.current_period_start + item.current_period_end) // 2
    client.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": middle})
    return middle


def _change_to(
    client: stripe.StripeClient,
    clock_id: str,
    sub: stripe.Subscription,
    amount: int,
    **extra: object,
) -> tuple[stripe.Price, dict[str, object]]:
    """Halfway through the period: a new price and the update's params moving `sub` to it."""
    at = _halfway(client, clock_id, sub)
    price = monthly_price(client, amount)
    details = {"items": [{"id": sub["items"].data[0].id, "price": price.id}], "proration_date": at}
    return price, {**details, **extra}


def _amounts(invoice: stripe.Invoice) -> list[tuple[int, bool]]:
    return sorted(
        (line.amount, line.parent.subscription_item_details.proration)
        for line in invoice.lines.data
    )


def test_upgrade_preview_equals_the_invoice_the_update_creates(
    client: stripe.StripeClient,
) -> None:
    clock, customer, sub = _clocked(client, 3000)
    business, details = _change_to(client, clock.id, sub, 9000, proration_behavior="always_invoice")
    at = details["proration_date"]
    preview = client.v1.invoices.create_preview(
        params={"customer": customer.id, "subscription": sub.id, "subscription_details": details}
    )
    assert preview.object == "invoice" and preview.id.startswith("upcoming_in_")
    assert preview.customer == customer.id and preview.currency == "usd"
    assert preview.billing_reason == "subscription_update"
    assert preview.parent.subscription_details.subscription == sub.id
    assert preview.parent.subscription_details.subscription_proration_date == at
    assert all(line.parent.subscription_item_details.proration for line in preview.lines.data)
    assert {line.pricing.price_details.price for line in preview.lines.data} == {
        sub["items"].data[0].price.id,
        business.id,
    }
    assert all(line.period.start == at for line in preview.lines.data)
    assert 2900 <= preview.total <= 3100  # half a month of the 60.00 difference
    assert preview.amount_due == preview.total and preview.starting_balance == 0
    # Nothing changed.
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id != business.id
    assert len(client.v1.invoices.list(params={"customer": customer.id}).data) == 1

    updated = client.v1.subscriptions.update(
        sub.id, params={**details, "expand": ["latest_invoice"]}
    )
    invoice = updated.latest_invoice
    assert invoice.status == "paid"
    assert (invoice.total, invoice.subtotal, invoice.amount_due) == (
        preview.total,
        preview.subtotal,
        preview.amount_due,
    )
    assert _amounts(invoice) == _amounts(preview)


def test_create_prorations_preview_is_the_next_renewal(client: stripe.StripeClient) -> None:
    clock, _customer, sub = _clocked(client, 3000)
    _price, details = _change_to(client, clock.id, sub, 9000)
    preview = client.v1.invoices.create_preview(
        params={"subscription": sub.id, "subscription_details": details}
    )
    end = sub["items"].data[0].current_period_end
    assert preview.billing_reason == "subscription_cycle"
    assert preview.next_payment_attempt == end
    prorations = [
        line for line in preview.lines.data if line.parent.subscription_item_details.proration
    ]
    assert len(prorations) == 2
    assert preview.total == 9000 + sum(line.amount for line in prorations)

    client.v1.subscriptions.update(sub.id, params=details)
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": end + 60})
    renewal = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert renewal.total == preview.total and _amounts(renewal) == _amounts(preview)


def test_preview_errors(client: stripe.StripeClient) -> None:
    customer, _ = customer_with_card(client)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.invoices.create_preview(params={"customer": customer.id})
    assert raised.value.code == "invoice_upcoming_none"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.invoices.create_preview(params={"subscription": "sub_missing"})
    assert missing.value.http_status == 404 and missing.value.param == "subscription"


def test_downgrade_credit_goes_to_the_balance_and_pays_the_next_invoices(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    clock, customer, sub = _clocked(client, 24000)
    _price, details = _change_to(client, clock.id, sub, 2000, proration_behavior="always_invoice")
    preview = client.v1.invoices.create_preview(
        params={"subscription": sub.id, "subscription_details": details}
    )
    assert preview.total < 0 and preview.amount_due == 0
    assert preview.ending_balance == preview.total
    assert client.v1.customers.retrieve(customer.id).balance == 0

    updated = client.v1.subscriptions.update(
        sub.id, params={**details, "expand": ["latest_invoice"]}
    )
    invoice = updated.latest_invoice
    credit = invoice.total
    assert credit == preview.total and credit < -10000
    assert invoice.status == "paid" and invoice.amount_due == 0 and invoice.amount_paid == 0
    assert (invoice.starting_balance, invoice.ending_balance) == (0, credit)
    assert client.v1.customers.retrieve(customer.id).balance == credit
    receiver.wait_for_event(
        "customer.updated",
        lambda o: o["id"] == customer.id and o["balance"] == credit,
    )
    transactions = client.v1.customers.balance_transactions.list(customer.id)
    assert [(t.type, t.amount, t.invoice) for t in transactions.data] == [
        ("applied_to_invoice", credit, invoice.id)
    ]

    # The renewal (20.00) is paid from the credit; the next preview says so.
    upcoming = client.v1.invoices.create_preview(params={"subscription": sub.id})
    assert (upcoming.total, upcoming.amount_due) == (2000, 0)
    assert (upcoming.starting_balance, upcoming.ending_balance) == (credit, credit + 2000)
    end = updated["items"].data[0].current_period_end
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": end + 60})
    renewal = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert (renewal.total, renewal.amount_due, renewal.amount_paid) == (2000, 0, 0)
    assert renewal.status == "paid"
    assert (renewal.starting_balance, renewal.ending_balance) == (credit, credit + 2000)
    assert client.v1.customers.retrieve(customer.id).balance == credit + 2000


def test_balance_adjustments(client: stripe.StripeClient, receiver: Receiver) -> None:
    customer, _ = customer_with_card(client)
    credit = client.v1.customers.balance_transactions.create(
        customer.id,
        params={"amount": -1500, "currency": "usd", "description": "Goodwill credit"},
    )
    assert credit.id.startswith("cbtxn_") and credit.object == "customer_balance_transaction"
    assert (credit.type, credit.amount, credit.ending_balance) == ("adjustment", -1500, -1500)
    debit = client.v1.customers.balance_transactions.create(
        customer.id, params={"amount": 500, "currency": "usd"}
    )
    assert debit.ending_balance == -1000
    refreshed = client.v1.customers.retrieve(customer.id)
    assert refreshed.balance == -1000 and refreshed.currency == "usd"
    listed = client.v1.customers.balance_transactions.list(customer.id)
    assert [t.id for t in listed.data] == [debit.id, credit.id]
    assert client.v1.customers.balance_transactions.retrieve(customer.id, credit.id).amount == -1500
    receiver.wait_for_event(
        "customer.updated", lambda o: o["id"] == customer.id and o["balance"] == -1000
    )
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.customers.balance_transactions.create(customer.id, params={"amount": 100})
    assert missing.value.param == "currency"

    # A 30.00 subscription with 10.00 of credit charges 20.00.
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": monthly_price(client, 3000).id}],
            "expand": ["latest_invoice"],
        }
    )
    invoice = sub.latest_invoice
    assert (invoice.total, invoice.amount_due, invoice.amount_paid) == (3000, 2000, 2000)
    assert (invoice.starting_balance, invoice.ending_balance) == (-1000, 0)
    assert client.v1.customers.retrieve(customer.id).balance == 0
