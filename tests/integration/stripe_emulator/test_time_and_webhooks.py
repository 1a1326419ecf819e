"""Test clocks renew or fail periods; webhooks are signed and retried; state survives restarts."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import stripe

from tests.integration.stripe_emulator.conftest import (
    WEBHOOK_SECRET,
    Receiver,
    make_emulator,
    wait_until,
)
from tests.integration.stripe_emulator.helpers import customer_with_card, monthly_price, unique

DAY = 86400


def _clocked_subscription(
    client: stripe.StripeClient, **sub_params: object
) -> tuple[stripe.test_helpers.TestClock, stripe.Customer, stripe.Subscription]:
    clock = client.v1.test_helpers.test_clocks.create(
        params={"frozen_time": int(time.time()), "name": unique("clock")}
    )
    assert clock.id.startswith("clock_") and clock.status == "ready"
    customer, _ = customer_with_card(client, test_clock=clock.id)
    assert customer.test_clock == clock.id
    price = monthly_price(client, 3000)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}], **sub_params}
    )
    return clock, customer, sub


def test_clock_advance_renews_with_a_paid_invoice(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    clock, customer, sub = _clocked_subscription(client)
    first_end = sub["items"].data[0].current_period_end
    advanced = client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": first_end + 60}
    )
    assert advanced.frozen_time == first_end + 60
    assert client.v1.test_helpers.test_clocks.retrieve(clock.id).status == "ready"

    renewed = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    item = renewed["items"].data[0]
    assert item.current_period_start == first_end
    assert item.current_period_end > first_end + 27 * DAY
    assert renewed.status == "active"
    invoice = renewed.latest_invoice
    assert invoice.id != sub.latest_invoice
    assert invoice.billing_reason == "subscription_cycle"
    assert invoice.status == "paid" and invoice.amount_paid == 3000
    invoices = client.v1.invoices.list(params={"customer": customer.id})
    assert len(invoices.data) == 2

    paid = receiver.wait_for_event("invoice.paid", lambda o: o["id"] == invoice.id)
    assert paid["data"]["object"]["parent"]["subscription_details"]["subscription"] == sub.id
    updated = receiver.wait_for_event(
        "customer.subscription.updated",
        lambda o: o["id"] == sub.id and o["items"]["data"][0]["current_period_start"] == first_end,
    )
    assert "items" in updated["data"]["previous_attributes"]

    with pytest.raises(stripe.InvalidRequestError):
        client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": first_end})


def test_failing_card_makes_the_subscription_past_due(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    clock, customer, sub = _clocked_subscription(client)
    failing = client.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": customer.id}
    )
    assert failing.card.last4 == "0341"
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": failing.id}}
    )
    end = sub["items"].data[0].current_period_end
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": end + 1})

    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed.status == "past_due"
    invoice = client.v1.invoices.retrieve(renewed.latest_invoice)
    assert invoice.status == "open"
    assert invoice.attempt_count == 1
    receiver.wait_for_event("invoice.payment_failed", lambda o: o["id"] == invoice.id)
    receiver.wait_for_event(
        "customer.subscription.updated",
        lambda o: o["id"] == sub.id and o["status"] == "past_due",
    )

    # A working card and a retry bring it back.
    client.v1.customers.update(
        customer.id,
        params={"invoice_settings": {"default_payment_method": "pm_card_visa"}},
    )
    assert client.v1.invoices.pay(invoice.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_trial_ends_and_cancel_at_period_end(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    clock, _customer, trial = _clocked_subscription(client, trial_period_days=7)
    assert trial.status == "trialing"
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": trial.trial_end - 2 * DAY}
    )
    receiver.wait_for_event("customer.subscription.trial_will_end", lambda o: o["id"] == trial.id)
    client.v1.subscriptions.update(trial.id, params={"cancel_at_period_end": True})
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": trial.trial_end + 1}
    )
    ended = client.v1.subscriptions.retrieve(trial.id)
    assert ended.status == "canceled"
    assert ended.ended_at == trial.trial_end
    receiver.wait_for_event("customer.subscription.deleted", lambda o: o["id"] == trial.id)


def test_webhooks_are_signed_like_stripe(client: stripe.StripeClient, receiver: Receiver) -> None:
    customer = client.v1.customers.create(params={"email": "signed@example.com"})
    receiver.wait_for_event("customer.created", lambda o: o["id"] == customer.id)
    delivery = next(
        d
        for d in receiver.deliveries
        if d.status == 200 and d.event["data"]["object"].get("id") == customer.id
    )
    assert delivery.signature.startswith("t=") and ",v1=" in delivery.signature
    event = stripe.Webhook.construct_event(delivery.body, delivery.signature, WEBHOOK_SECRET)
    assert event.type == "customer.created"
    assert event.data.object.id == customer.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery.body, delivery.signature, "whsec_wrong")


def test_failed_deliveries_are_retried(client: stripe.StripeClient, receiver: Receiver) -> None:
    email = f"{unique('retry')}@example.com"
    receiver.fail_first = lambda event: event["data"]["object"].get("email") == email
    try:
        customer = client.v1.customers.create(params={"email": email})

        def attempts() -> list[int]:
            return [
                d.status
                for d in receiver.deliveries
                if d.event["type"] == "customer.created"
                and d.event["data"]["object"]["id"] == customer.id
            ]

        wait_until(lambda: attempts() == [500, 200], 10, "a retried delivery")
        event = receiver.wait_for_event("customer.created", lambda o: o["id"] == customer.id)
        assert client.v1.events.retrieve(event["id"]).pending_webhooks == 0
    finally:
        receiver.fail_first = lambda event: False


def test_state_survives_restart_and_global_clock(tmp_path: Path, receiver: Receiver) -> None:
    process = make_emulator(tmp_path, receiver.url)
    process.start()
    try:
        client = stripe.StripeClient(
            "sk_test_restart", base_addresses={"api": process.url}, max_network_retries=0
        )
        customer, _ = customer_with_card(client)
        price = monthly_price(client, 1000)
        sub = client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": price.id}]}
        )
        process.stop()
        process.start()
        assert client.v1.customers.retrieve(customer.id).email == customer.email
        assert (tmp_path / "stripe-emulator.db").exists()

        end = sub["items"].data[0].current_period_end
        response = httpx.post(f"{process.url}/_emulator/advance", data={"days": 32})
        assert response.status_code == 200 and response.json()["now"] > end
        renewed = client.v1.subscriptions.retrieve(sub.id)
        assert renewed["items"].data[0].current_period_start == end
        assert client.v1.invoices.retrieve(renewed.latest_invoice).status == "paid"
    finally:
        process.stop()
