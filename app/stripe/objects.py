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
