"""A trial ending without a payment method pauses the subscription when asked to
(`customer.subscription.paused`); resuming it bills a new period
(`customer.subscription.resumed`); a deleted customer sends `customer.deleted`."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.integration.stripe_emulator.conftest import Receiver
from tests.integration.stripe_emulator.helpers import monthly_price, unique
from tests.integration.stripe_emulator.signed import signed_event

DAY = 86400


def _trial_without_card(
    client: stripe.StripeClient, behavior: str
) -> tuple[stripe.test_helpers.TestClock, stripe.Customer, stripe.Subscription]:
    clock = client.v1.test_helpers.test_clocks.create(
        params={"frozen_time": int(time.time()), "name": unique("clock")}
    )
    customer = client.v1.customers.create(params={"test_clock": clock.id})
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": monthly_price(client, 1200).id}],
            "trial_period_days": 7,
            "trial_settings": {"end_behavior": {"missing_payment_method": behavior}},
        }
    )
    assert sub.status == "trialing"
    assert sub.trial_settings.end_behavior.missing_payment_method == behavior
    return clock, customer, sub


def _end_trial(client: stripe.StripeClient, clock_id: str, sub: stripe.Subscription) -> None:
    assert sub.trial_end is not None
    client.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": sub.trial_end + 60})


def test_trial_end_pauses_then_resume_bills(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    clock, customer, sub = _trial_without_card(client, "pause")
    _end_trial(client, clock.id, sub)
    paused = client.v1.subscriptions.retrieve(sub.id)
    assert paused.status == "paused"
    assert paused.latest_invoice == sub.latest_invoice  # no invoice while paused
    event = signed_event(receiver, "customer.subscription.paused", lambda o: o["id"] == sub.id)
    assert event["data"]["object"]["status"] == "paused"
    updated = signed_event(
        receiver,
        "customer.subscription.updated",
        lambda o: o["id"] == sub.id and o["status"] == "paused",
    )
    assert updated["data"]["previous_attributes"]["status"] == "trialing"

    # Later renewals leave it alone.
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": sub.trial_end + 40 * DAY}
    )
    assert client.v1.subscriptions.retrieve(sub.id).status == "paused"

    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )
    resumed = client.v1.subscriptions.resume(sub.id, params={"expand": ["latest_invoice"]})
    assert resumed.status == "active"
    assert resumed.latest_invoice.status == "paid" and resumed.latest_invoice.amount_paid == 1200
    item = resumed["items"].data[0]
    assert item.current_period_start == sub.trial_end + 40 * DAY
    event = signed_event(receiver, "customer.subscription.resumed", lambda o: o["id"] == sub.id)
    assert event["data"]["object"]["status"] == "active"


def test_resume_needs_a_paused_subscription(client: stripe.StripeClient) -> None:
    _, _, sub = _trial_without_card(client, "pause")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.resume(sub.id)
    assert exc.value.http_status == 400


def test_trial_end_cancels_when_asked(client: stripe.StripeClient, receiver: Receiver) -> None:
    clock, _, sub = _trial_without_card(client, "cancel")
    _end_trial(client, clock.id, sub)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    signed_event(receiver, "customer.subscription.deleted", lambda o: o["id"] == sub.id)


def test_customer_deleted(client: stripe.StripeClient, receiver: Receiver) -> None:
    customer = client.v1.customers.create(params={"email": f"{unique('d')}@example.com"})
    deleted = client.v1.customers.delete(customer.id)
    assert deleted.deleted is True
    event = signed_event(receiver, "customer.deleted", lambda o: o["id"] == customer.id)
    obj = event["data"]["object"]
    assert obj["object"] == "customer" and obj["email"] == customer.email
    assert "deleted" not in obj  # the customer as it was, as Stripe sends it
    assert client.v1.customers.retrieve(customer.id).deleted is True


def test_deleting_a_customer_cancels_its_subscriptions(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    _, customer, sub = _trial_without_card(client, "pause")
    client.v1.customers.delete(customer.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    signed_event(receiver, "customer.subscription.deleted", lambda o: o["id"] == sub.id)


def test_resume_on_payment_success_stays_paused_when_unpaid(client: stripe.StripeClient) -> None:
    clock, customer, sub = _trial_without_card(client, "pause")
    _end_trial(client, clock.id, sub)
    pm = client.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": customer.id}
    )
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )
    still = client.v1.subscriptions.resume(
        sub.id,
        params={
            "payment_behavior": "resume_on_payment_success",
            "billing_cycle_anchor": {"type": "now"},
            "expand": ["latest_invoice"],
        },
    )
    assert still.status == "paused" and still.latest_invoice.status == "open"
    resumed = client.v1.subscriptions.resume(sub.id)  # resume_on_payment_attempt
    assert resumed.status == "past_due"
