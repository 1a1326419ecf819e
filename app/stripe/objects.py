"""Typed views of the Stripe objects the portal reads, as the gateway returns them (JSON).

Only the fields our code reads are declared; Stripe sends more. An expandable field is an
id, or the expanded object when asked for (`ref_id` in app.billing.stripe_objects reads
both).
"""

from __future__ import annotations

from typing import Any, Literal, Required, TypedDict

Expandable = str | dict[str, Any] | None


class CheckoutSession(TypedDict, total=False):
    id: Required[str]
    mode: Literal["payment", "setup", "subscription"]
    status: Literal["open", "complete", "expired"] | None
    payment_status: Literal["paid", "unpaid", "no_payment_required"]
    url: str | None
    customer: Expandable
    client_reference_id: str | None
    subscription: Expandable
    invoice: Expandable
    metadata: dict[str, str] | None
    created: int


class Price(TypedDict, total=False):
    id: Required[str]
    lookup_key: str | None
    metadata: dict[str, str]
    product: Expandable
    currency: str
    unit_amount: int | None
    recurring: dict[str, Any] | None


class InvoiceLineItem(TypedDict, total=False):
    id: Required[str]
    amount: int
    currency: str
    description: str | None
    quantity: int | None
    period: dict[str, int]
    parent: dict[str, Any] | None
    pricing: dict[str, Any] | None


class CardDetails(TypedDict, total=False):
    brand: str | None
    last4: str | None


class PaymentMethodDetails(TypedDict, total=False):
    type: str
    card: CardDetails | None


class Charge(TypedDict, total=False):
    id: Required[str]
    amount: int
    amount_refunded: int
    refunded: bool
    currency: str
    customer: Expandable
    payment_intent: Expandable
    payment_method_details: PaymentMethodDetails | None
    status: Literal["succeeded", "pending", "failed"]


class PaymentIntent(TypedDict, total=False):
    id: Required[str]
    amount: int
    currency: str
    status: str
    customer: Expandable
    payment_method: Expandable
    latest_charge: str | Charge | None
