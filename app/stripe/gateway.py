"""The Stripe gateway: `app/stripe/` is the only package that imports `stripe`.

Everything the portal asks of Stripe goes through `StripeGateway`, a thin wrapper over
`stripe.StripeClient` (`client.v1.*`, async methods), put together here from one module of
calls per kind of Stripe object (customers, catalog, checkout, subscriptions, invoices,
meters, events; `client.py` holds what they share). It

- builds every request's parameters as the SDK's typed `*Params` dicts, so mypy
  (`make typecheck`) rejects a misspelt or mistyped parameter;
- sends an `Idempotency-Key` with every POST, chosen by the caller from our own ids, so a
  retry (the SDK's `max_network_retries`, the worker's, a user's double submit) is safe;
- returns the JSON Stripe sent, typed as the TypedDicts of `app/stripe/objects.py` (the same
  shape the webhook handlers read from events), so services never touch SDK objects;
- turns `stripe.StripeError` into `StripeGatewayError` (a `DomainError`) with a message
  that can be shown to the user.

`STRIPE_API_BASE` (or the emulator's address when no key is set) replaces Stripe's API
address; the API version is the one the SDK pins.
"""

from __future__ import annotations

from app.stripe.account_deletion import AccountDeletionCalls
from app.stripe.billing_details import BillingDetailsCalls
from app.stripe.catalog import CatalogCalls
from app.stripe.checkout import CheckoutCalls
from app.stripe.client import (
    API_VERSION,
    WEBHOOK_TOLERANCE_SECONDS,
    InvalidSignature,
    Json,
    LineItem,
    MeterSessionExpired,
    MeterStreamUnavailable,
    PaymentBehavior,
    ProrationBehavior,
    StripeCardError,
    StripeGatewayError,
    StripeNotFound,
    content_hash,
    idempotency_key,
)
from app.stripe.customers import CustomerCalls
from app.stripe.events import EventCalls, ThinEvent
from app.stripe.invoices import InvoiceCalls
from app.stripe.meters import METER_STREAM_MAX_EVENTS, MeterCalls, MeterEvent, MeterEventSession
from app.stripe.payments import PaymentCalls
from app.stripe.subscriptions import ItemChange, Phase, SubscriptionCalls


class StripeGateway(
    EventCalls,
    CustomerCalls,
    BillingDetailsCalls,
    CatalogCalls,
    CheckoutCalls,
    SubscriptionCalls,
    AccountDeletionCalls,
    InvoiceCalls,
    PaymentCalls,
    MeterCalls,
):
    """Every call the portal makes to Stripe (see the module docstring)."""


__all__ = [
    "API_VERSION",
    "METER_STREAM_MAX_EVENTS",
    "WEBHOOK_TOLERANCE_SECONDS",
    "InvalidSignature",
    "ItemChange",
    "Json",
    "LineItem",
    "MeterEvent",
    "MeterEventSession",
    "MeterSessionExpired",
    "MeterStreamUnavailable",
    "PaymentBehavior",
    "Phase",
    "ProrationBehavior",
    "StripeCardError",
    "StripeGateway",
    "StripeGatewayError",
    "StripeNotFound",
    "ThinEvent",
    "content_hash",
    "idempotency_key",
]
