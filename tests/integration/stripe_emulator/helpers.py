"""Small builders shared by the emulator tests."""

from __future__ import annotations

import uuid

import stripe


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def monthly_price(client: stripe.StripeClient, amount: int = 2000, **extra: object) -> stripe.Price:
    product = client.v1.products.create(params={"name": unique("Pro")})
    return client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": "month"},
            **extra,
        }
    )


def customer_with_card(
    client: stripe.StripeClient, card: str = "pm_card_visa", **params: object
) -> tuple[stripe.Customer, stripe.PaymentMethod]:
    customer = client.v1.customers.create(params={"email": f"{unique('u')}@example.com", **params})
    pm = client.v1.payment_methods.attach(card, params={"customer": customer.id})
    customer = client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )
    return customer, pm


def sum_meter(
    client: stripe.StripeClient, display_name: str, event_name: str
) -> stripe.billing.Meter:
    """A meter summing `payload.value` per customer (`payload.stripe_customer_id`), as ours."""
    return client.v1.billing.meters.create(
        params={
            "display_name": display_name,
            "event_name": event_name,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": {"event_payload_key": "value"},
        }
    )
