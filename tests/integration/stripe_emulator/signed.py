"""Waiting for an event at the webhook receiver and checking it arrived signed as Stripe signs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import stripe

from tests.integration.stripe_emulator.conftest import WEBHOOK_SECRET, Receiver
from tests.support import wait_until


def signed_event(
    receiver: Receiver,
    type_: str,
    match: Callable[[dict[str, Any]], bool] = lambda obj: True,
) -> dict[str, Any]:
    """The first delivered `type_` event whose object matches, after checking its
    `Stripe-Signature` with the SDK (`stripe.Webhook.construct_event`)."""

    def found() -> tuple[bytes, str] | None:
        with receiver.lock:
            deliveries = list(receiver.deliveries)
        for delivery in deliveries:
            event = delivery.event
            if event.get("type") == type_ and match(event["data"]["object"]):
                return delivery.body, delivery.signature
        return None

    body, signature = wait_until(found, 10, f"webhook {type_}")
    event = stripe.Webhook.construct_event(body.decode(), signature, WEBHOOK_SECRET)
    assert event.type == type_ and event.object == "event"
    assert event.api_version == stripe.api_version
    return dict(event.to_dict())


def thin_notification(receiver: Receiver, type_: str, related_id: str) -> tuple[bytes, str]:
    """The body and `Stripe-Signature` of the first thin event notification of `type_` about
    `related_id` delivered to /webhooks/stripe/thin."""

    def found() -> tuple[bytes, str] | None:
        with receiver.lock:
            deliveries = list(receiver.thin_deliveries)
        for delivery in deliveries:
            body = delivery.event
            if body.get("type") == type_ and body["related_object"]["id"] == related_id:
                return delivery.body, delivery.signature
        return None

    return wait_until(found, 10, f"thin event {type_}")
