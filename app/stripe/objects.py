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
    metadata: dict[str, str]


class InvoiceLines(TypedDict, total=False):
    data: list[InvoiceLineItem]
    has_more: bool


class InvoicePreview(TypedDict, total=False):
    """An invoice Stripe computed without making it (`invoices.create_preview`): `id` is
    `upcoming_in_...`, nothing was charged or saved."""

    id: Required[str]
    currency: str
    total: int
    subtotal: int
    amount_due: int
    starting_balance: int
    ending_balance: int | None
    billing_reason: str | None
    next_payment_attempt: int | None
    period_end: int
    lines: InvoiceLines
    parent: dict[str, Any] | None
    total_taxes: list[dict[str, Any]] | None
    total_discount_amounts: list[dict[str, Any]] | None


class InvoiceSettings(TypedDict, total=False):
    default_payment_method: Expandable


class Address(TypedDict, total=False):
    line1: str | None
    line2: str | None
    city: str | None
    postal_code: str | None
    state: str | None
    country: str | None


class TaxId(TypedDict, total=False):
    """A customer's tax ID (`/v1/customers/{id}/tax_ids`)."""

    id: Required[str]
    deleted: bool
    customer: Expandable
    type: str
    value: str
    country: str | None
    verification: dict[str, Any] | None


class Customer(TypedDict, total=False):
    """A customer; once deleted, Stripe answers only `id` and `deleted`."""

    id: Required[str]
    deleted: bool
    email: str | None
    name: str | None
    address: Address | None
    currency: str | None
    balance: int
    invoice_settings: InvoiceSettings | None
    metadata: dict[str, str]
    test_clock: Expandable


class SubscriptionItem(TypedDict, total=False):
    id: Required[str]
    price: Price
    quantity: int | None
    current_period_start: int
    current_period_end: int


class SubscriptionItems(TypedDict, total=False):
    data: list[SubscriptionItem]
    has_more: bool


class Subscription(TypedDict, total=False):
    id: Required[str]
    status: Literal[
        "incomplete",
        "incomplete_expired",
        "trialing",
        "active",
        "past_due",
        "canceled",
        "unpaid",
        "paused",
    ]
    customer: Expandable
    items: SubscriptionItems
    created: int
    trial_end: int | None
    cancel_at_period_end: bool
    cancel_at: int | None
    canceled_at: int | None
    ended_at: int | None
    schedule: Expandable
    pending_update: dict[str, Any] | None
    latest_invoice: Expandable
    default_payment_method: Expandable
    metadata: dict[str, str]


class Invoice(TypedDict, total=False):
    id: Required[str]
    status: Literal["draft", "open", "paid", "uncollectible", "void"] | None
    customer: Expandable
    number: str | None
    currency: str
    billing_reason: str | None
    description: str | None
    total: int
    subtotal: int
    amount_due: int
    amount_paid: int
    starting_balance: int
    ending_balance: int | None
    total_taxes: list[dict[str, Any]] | None
    total_discount_amounts: list[dict[str, Any]] | None
    # The customer's details as the invoice carries them (fixed when it is finalized).
    customer_name: str | None
    customer_email: str | None
    customer_address: Address | None
    customer_tax_ids: list[dict[str, Any]] | None
    pre_payment_credit_notes_amount: int
    post_payment_credit_notes_amount: int
    period_start: int
    period_end: int
    created: int
    hosted_invoice_url: str | None
    invoice_pdf: str | None
    lines: InvoiceLines
    parent: dict[str, Any] | None
    payments: dict[str, Any] | None
    metadata: dict[str, str]


class Card(TypedDict, total=False):
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class PaymentMethod(TypedDict, total=False):
    """A saved payment method of any type: its type's own block holds what to show."""

    id: Required[str]
    type: str
    created: int
    customer: Expandable
    card: Card | None
    sepa_debit: dict[str, Any] | None
    us_bank_account: dict[str, Any] | None
    link: dict[str, Any] | None
    billing_details: dict[str, Any]
    metadata: dict[str, str]


class SchedulePhaseItem(TypedDict, total=False):
    price: Expandable
    quantity: int | None


class SchedulePhase(TypedDict, total=False):
    start_date: int
    end_date: int
    items: list[SchedulePhaseItem]
    proration_behavior: str


class SubscriptionSchedule(TypedDict, total=False):
    id: Required[str]
    status: Literal["not_started", "active", "completed", "released", "canceled"]
    subscription: Expandable
    customer: Expandable
    current_phase: dict[str, int] | None
    phases: list[SchedulePhase]
    end_behavior: Literal["release", "cancel", "none", "renew"]
    metadata: dict[str, str]


# The account's settings, as `billing-portal stripe-check` reads them.


class BusinessProfile(TypedDict, total=False):
    name: str | None
    support_email: str | None
    support_url: str | None
    url: str | None


class Account(TypedDict, total=False):
    """`GET /v1/account`: the account the key belongs to (it carries no `livemode`)."""

    id: Required[str]
    business_profile: BusinessProfile | None
    charges_enabled: bool | None
    details_submitted: bool | None
    payouts_enabled: bool | None
    country: str | None
    default_currency: str | None
    settings: dict[str, Any] | None


class PortalFeature(TypedDict, total=False):
    enabled: bool
    mode: Literal["at_period_end", "immediately"]  # subscription_cancel
    proration_behavior: str  # subscription_cancel, subscription_update
    allowed_updates: list[str]  # customer_update
    default_allowed_updates: list[str]  # subscription_update


class PortalFeatures(TypedDict, total=False):
    customer_update: PortalFeature
    invoice_history: PortalFeature
    payment_method_update: PortalFeature
    subscription_cancel: PortalFeature
    subscription_pause: PortalFeature
    subscription_update: PortalFeature


class PortalConfiguration(TypedDict, total=False):
    """A customer portal configuration; the default one is what the Dashboard's portal
    settings saved, and what a portal session created without `configuration` uses."""

    id: Required[str]
    active: bool
    is_default: bool
    livemode: bool
    features: PortalFeatures
    business_profile: dict[str, str | None]


class WebhookEndpoint(TypedDict, total=False):
    id: Required[str]
    url: str
    status: str  # enabled | disabled
    enabled_events: list[str]
    api_version: str | None  # None: the account's default version
    livemode: bool


class PaymentMethodConfiguration(TypedDict, total=False):
    """Which payment methods Checkout may offer. Besides these fields it has one per payment
    method type (`card`, `link`, `sepa_debit`, ...), each `{"available", "display_preference":
    {"preference", "value"}}` or null."""

    id: Required[str]
    name: str
    active: bool
    is_default: bool
    livemode: bool
    parent: str | None
