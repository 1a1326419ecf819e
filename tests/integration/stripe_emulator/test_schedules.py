"""Subscription schedules: a downgrade at the period end, released after its last phase."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.integration.stripe_emulator.conftest import Receiver
from tests.integration.stripe_emulator.helpers import customer_with_card, monthly_price, unique


def _scheduled(
    client: stripe.StripeClient,
) -> tuple[str, stripe.Subscription, stripe.SubscriptionSchedule]:
    clock = client.v1.test_helpers.test_clocks.create(
        params={"frozen_time": int(time.time()), "name": unique("clock")}
    )
    customer, _ = customer_with_card(client, test_clock=clock.id)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": monthly_price(client, 9000).id}]}
    )
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    return clock.id, sub, schedule


def test_a_downgrade_scheduled_for_the_period_end(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    clock_id, sub, schedule = _scheduled(client)
    item = sub["items"].data[0]
    start, end = item.current_period_start, item.current_period_end
    assert schedule.id.startswith("sub_sched_") and schedule.object == "subscription_schedule"
    assert (schedule.status, schedule.subscription, schedule.end_behavior) == (
        "active",
        sub.id,
        "release",
    )
    assert (schedule.current_phase.start_date, schedule.current_phase.end_date) == (start, end)
    assert [(i.price, i.quantity) for i in schedule.phases[0]["items"]] == [(item.price.id, 1)]
    assert client.v1.subscriptions.retrieve(sub.id).schedule == schedule.id
    receiver.wait_for_event("subscription_schedule.created", lambda o: o["id"] == schedule.id)

    pro = monthly_price(client, 2000)
    schedule = client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "end_behavior": "release",
            "phases": [
                {
                    "items": [{"price": item.price.id, "quantity": 1}],
                    "start_date": start,
                    "end_date": end,
                },
                {"items": [{"price": pro.id, "quantity": 1}], "proration_behavior": "none"},
            ],
        },
    )
    assert [p.start_date for p in schedule.phases] == [start, end]
    second_end = schedule.phases[1].end_date
    assert second_end > end
    receiver.wait_for_event("subscription_schedule.updated", lambda o: o["id"] == schedule.id)
    # Nothing changes before the period ends; the preview of the next renewal bills Pro.
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == item.price.id
    preview = client.v1.invoices.create_preview(params={"schedule": schedule.id})
    assert preview.total == 2000 and preview.next_payment_attempt == end
    listed = client.v1.subscription_schedules.list(params={"customer": sub.customer})
    assert [s.id for s in listed.data] == [schedule.id]

    client.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": end + 60})
    moved = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert [i.price.id for i in moved["items"].data] == [pro.id]
    assert moved.latest_invoice.total == 2000 and moved.latest_invoice.status == "paid"
    assert moved.latest_invoice.billing_reason == "subscription_cycle"
    assert moved.schedule == schedule.id
    current = client.v1.subscription_schedules.retrieve(schedule.id).current_phase
    assert (current.start_date, current.end_date) == (end, second_end)
    receiver.wait_for_event(
        "customer.subscription.updated",
        lambda o: o["id"] == sub.id and o["items"]["data"][0]["price"]["id"] == pro.id,
    )

    client.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": second_end + 60})
    released = client.v1.subscription_schedules.retrieve(schedule.id)
    assert (released.status, released.subscription, released.released_subscription) == (
        "released",
        None,
        sub.id,
    )
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.schedule is None and after.status == "active"
    assert [i.price.id for i in after["items"].data] == [pro.id]
    receiver.wait_for_event("subscription_schedule.released", lambda o: o["id"] == schedule.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscription_schedules.release(schedule.id)


def test_release_keeps_the_subscription_and_cancel_ends_it(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    _clock, sub, schedule = _scheduled(client)
    released = client.v1.subscription_schedules.release(schedule.id)
    assert released.status == "released" and released.released_subscription == sub.id
    assert client.v1.subscriptions.retrieve(sub.id).schedule is None
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.subscription_schedules.create(
            params={"from_subscription": sub.id, "customer": sub.customer}
        )
    assert again.value.http_status == 400

    second = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError) as attached:
        client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    assert "already attached to a schedule" in str(attached.value.user_message)
    canceled = client.v1.subscription_schedules.cancel(second.id)
    assert canceled.status == "canceled" and canceled.canceled_at
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    receiver.wait_for_event("subscription_schedule.canceled", lambda o: o["id"] == second.id)


def test_end_behavior_cancel_completes_the_schedule(client: stripe.StripeClient) -> None:
    clock_id, sub, schedule = _scheduled(client)
    phase = schedule.phases[0]
    client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "end_behavior": "cancel",
            "phases": [
                {
                    "items": [{"price": phase["items"][0].price}],
                    "start_date": phase.start_date,
                    "end_date": phase.end_date,
                }
            ],
        },
    )
    client.v1.test_helpers.test_clocks.advance(
        clock_id, params={"frozen_time": phase.end_date + 60}
    )
    assert client.v1.subscription_schedules.retrieve(schedule.id).status == "completed"
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
