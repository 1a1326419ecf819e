"""The meter-event outbox rows: written by the usage writer in the usage event's own
transaction, sent to Stripe later by `app.stripe_sync.outbox`.

Where a plan bills usage beyond its included quota, each accepted event's overage becomes a
`stripe_outbox` row keyed by our identifier (meter, customer and transaction id), so a
retried usage write adds no row and a resend after a lost response is counted once by Stripe.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK
from app.lib.clock import utcnow

METER_EVENT = "meter_event"


class StripeOutboxMessage(Base):
    """A call to Stripe to make later (e.g. a meter event), written in the caller's transaction.

    The worker sends it with retries; `idempotency_key` (unique) is our own id for the call, so
    enqueueing twice is a no-op and a resend after a lost response is counted once by Stripe.
    """

    __tablename__ = "stripe_outbox"
    # The sender claims due pending rows oldest first (app.stripe_sync.repository.claim).
    __table_args__ = (Index("ix_stripe_outbox_status_created_at", "status", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))  # meter_event
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|dead|rejected
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


def meter_event_name(meter_code: str) -> str:
    """The Billing Meter's `event_name` at Stripe for one of our meters."""
    return f"bp_{meter_code}"


def meter_event_message(
    *, identifier: str, stripe_customer_id: str, meter_code: str, value: int, now: datetime
) -> dict[str, Any]:
    """The outbox row for a Billing Meter event. `identifier` is ours (meter, customer and
    transaction id), so Stripe counts the event once however often it is sent."""
    return {
        "kind": METER_EVENT,
        "idempotency_key": identifier,
        "payload": {
            "event_name": meter_event_name(meter_code),
            "stripe_customer_id": stripe_customer_id,
            "value": value,
            "identifier": identifier,
            "timestamp": int(now.timestamp()),
        },
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
