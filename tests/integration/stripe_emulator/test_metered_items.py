"""Metered prices changing mid-cycle, as Stripe documents it ("Manage your usage-based billing
setup"): in flexible billing mode a metered price leaving the subscription bills the usage
reported so far; classic mode drops it; a metered price added mid-cycle bills from then on."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.integration.stripe_emulator.helpers import (
    customer_with_card,
    monthly_price,
    sum_meter,
    unique,
)

DAY = 86400


def _metered_setup(
    client: stripe.StripeClient, **sub_params: object
) -> tuple[stripe.test_helpers.TestClock, stripe.Customer, stripe.Subscription, str, str]:
    """A clocked customer on a $30 plan plus 2¢ per unit of a metered price; the event name."""
    event_name = unique("calls")
    meter = sum_meter(client, "Calls", event_name)
    metered = monthly_price(
        client, 2, recurring={"interval": "month", "usage_type": "metered", "meter": meter.id}
    )
    clock = client.v1.test_helpers.test_clocks.create(
        params={"frozen_time": int(time.time()), "name": unique("clock")}
    )
    customer, _ = customer_with_card(client, test_clock=clock.id)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": monthly_price(client, 3000).id}, {"price": metered.id}],
            **sub_params,
        }
    )
    return clock, customer, sub, event_name, metered.id


def _use(client: stripe.StripeClient, event_name: str, customer: str, value: int) -> None:
    client.v1.billing.meter_events.create(
        params={
            "event_name": event_name,
            "payload": {"stripe_customer_id": customer, "value": str(value)},
        }
    )


def _advance(client: stripe.StripeClient, clock: stripe.test_helpers.TestClock, to: int) -> None:
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": to})


def _metered_item(sub: stripe.Subscription) -> stripe.SubscriptionItem:
    return next(i for i in sub["items"].data if i.price.recurring.usage_type == "metered")


def _usage_lines(client: stripe.StripeClient, invoice_id: str) -> list[tuple[int, int]]:
    invoice = client.v1.invoices.retrieve(invoice_id)
    return [
        (line.quantity, line.amount)
        for line in invoice.lines.data
        if (line.description or "").endswith("Calls")
    ]


def test_billing_mode_is_flexible_unless_asked_and_is_validated(
    client: stripe.StripeClient,
) -> None:
    _clock, customer, sub, _name, _price = _metered_setup(client)
    assert sub.billing_mode.type == "flexible"
    classic = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": monthly_price(client).id}],
            "billing_mode": {"type": "classic"},
        }
    )
    assert classic.billing_mode.type == "classic"
    with pytest.raises(stripe.InvalidRequestError) as bad:
        client.v1.subscriptions.create(
            params={
                "customer": customer.id,
                "items": [{"price": monthly_price(client).id}],
                "billing_mode": {"type": "weekly"},
            }
        )
    assert bad.value.param == "billing_mode[type]"


def test_flexible_mode_bills_the_usage_of_a_metered_price_removed_mid_cycle(
    client: stripe.StripeClient,
) -> None:
    clock, customer, sub, event_name, _price = _metered_setup(client)
    start = sub["items"].data[0].current_period_start
    _use(client, event_name, customer.id, 5)
    _advance(client, clock, start + 10 * DAY)
    _use(client, event_name, customer.id, 2)
    _advance(client, clock, start + 10 * DAY + 60)  # usage is billed up to the change

    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": _metered_item(sub).id, "deleted": True}],
            "proration_behavior": "always_invoice",
        },
    )
    assert updated.latest_invoice != sub.latest_invoice
    assert _usage_lines(client, str(updated.latest_invoice)) == [(7, 14)]

    # Usage after the removal is billed by nobody; the renewal bills the plan alone.
    _use(client, event_name, customer.id, 4)
    _advance(client, clock, updated["items"].data[0].current_period_end + 60)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert _usage_lines(client, str(renewed.latest_invoice)) == []


def test_flexible_mode_with_create_prorations_bills_that_usage_at_renewal(
    client: stripe.StripeClient,
) -> None:
    clock, customer, sub, event_name, _price = _metered_setup(client)
    _use(client, event_name, customer.id, 3)
    _advance(client, clock, sub["items"].data[0].current_period_start + DAY)
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": _metered_item(sub).id, "deleted": True}],
            "proration_behavior": "create_prorations",
        },
    )
    assert updated.latest_invoice == sub.latest_invoice
    _advance(client, clock, updated["items"].data[0].current_period_end + 60)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert _usage_lines(client, str(renewed.latest_invoice)) == [(3, 6)]


def test_classic_mode_drops_the_usage_of_a_removed_metered_price(
    client: stripe.StripeClient,
) -> None:
    clock, customer, sub, event_name, _price = _metered_setup(
        client, billing_mode={"type": "classic"}
    )
    _use(client, event_name, customer.id, 5)
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": _metered_item(sub).id, "deleted": True}],
            "proration_behavior": "always_invoice",
        },
    )
    assert updated.latest_invoice == sub.latest_invoice  # nothing to invoice
    _advance(client, clock, updated["items"].data[0].current_period_end + 60)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert _usage_lines(client, str(renewed.latest_invoice)) == []


def test_a_metered_price_added_mid_cycle_bills_usage_from_then_on(
    client: stripe.StripeClient,
) -> None:
    clock, customer, sub, event_name, metered_price = _metered_setup(client)
    plan_item = next(i for i in sub["items"].data if i.id != _metered_item(sub).id)
    start = plan_item.current_period_start
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": _metered_item(sub).id, "deleted": True}],
            "proration_behavior": "none",
        },
    )
    _use(client, event_name, customer.id, 5)  # no metered price: billed by nobody
    _advance(client, clock, start + 10 * DAY)
    client.v1.subscriptions.update(
        sub.id, params={"items": [{"price": metered_price}], "proration_behavior": "none"}
    )
    _use(client, event_name, customer.id, 2)
    _advance(client, clock, plan_item.current_period_end + 60)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert _usage_lines(client, str(renewed.latest_invoice)) == [(2, 4)]
