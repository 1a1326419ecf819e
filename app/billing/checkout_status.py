"""Where a Checkout Session stands, as the success page shows it, and what billing needs to
know of the event ledger for it.

The ledger (app.stripe_sync) sits above billing, so billing does not read it: it declares
what it needs (`CheckoutLedger`) and the composition root hands it the ledger's repository.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from app.catalog.models import Plan
from app.customers.models import Subscription


@dataclass(frozen=True)
class CompletedCheckout:
    """The ledger's `checkout.session.completed` event of one Checkout Session."""

    status: str  # the ledger row's: received|processed|failed|ignored
    stripe_customer_id: str | None
    mode: str | None  # the session's, as the event carried it
    pack_slug: str | None  # metadata.pack: a credit pack bought
    last_error: str | None
    # `checkout.session.async_payment_failed` arrived: a delayed payment (SEPA) failed.
    payment_failed: bool = False


class CheckoutLedger(Protocol):
    async def completed_checkout(self, session_id: str) -> CompletedCheckout | None: ...


@dataclass(frozen=True)
class CheckoutStatus:
    session_id: str
    mode: str
    state: Literal["processing", "done", "failed", "payment_failed", "open", "expired"]
    plan: Plan | None = None
    subscription: Subscription | None = None
    pack_name: str | None = None
    credits: int | None = None
    meter_name: str | None = None
    detail: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
