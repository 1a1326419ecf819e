"""Webhooks: the signature of a Stripe event, and thin (v2) event notifications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import stripe

from app.stripe.client import (
    WEBHOOK_TOLERANCE_SECONDS,
    GatewayBase,
    InvalidSignature,
    Json,
    _plain,
    _translate,
)

if TYPE_CHECKING:
    pass


class EventCalls(GatewayBase):
    # Webhooks ---------------------------------------------------------------------------

    def verify_signature(self, payload: bytes, signature: str | None) -> None:
        """Check the signature on the raw body (300 s tolerance); InvalidSignature if it fails.
        The body is not parsed here: the ledger checks a signed body's shape itself."""
        if not signature:
            raise InvalidSignature("missing Stripe-Signature header")
        try:
            # The header only: Stripe's construct_event would parse the body, without limits.
            stripe.WebhookSignature.verify_header(
                payload, signature, self.webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(str(exc)) from None
        except (ValueError, IndexError, KeyError) as exc:  # malformed header or body
            raise InvalidSignature(f"malformed webhook: {exc}") from None

    # Thin (v2) events -------------------------------------------------------------------

    async def parse_thin_event(self, payload: bytes, signature: str | None) -> ThinEvent:
        """Verify a thin event notification (its event destination's secret, the webhook's
        tolerance) and fetch the event's data from Stripe; InvalidSignature if the signature
        does not hold."""
        if not signature:
            raise InvalidSignature("missing Stripe-Signature header")
        try:
            notification = self.client.parse_event_notification(
                payload, signature, self.thin_webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(str(exc)) from None
        except (ValueError, IndexError, KeyError, TypeError) as exc:  # malformed header or body
            raise InvalidSignature(f"malformed event notification: {exc}") from None
        related = getattr(notification, "related_object", None)
        try:
            event = await notification.fetch_event_async()
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        data = getattr(event, "data", None)
        return ThinEvent(
            id=str(notification.id),
            type=str(notification.type),
            created=_unix_time(notification.created),
            related_object_id=str(related.id) if related is not None else None,
            data=_plain(data) if data is not None else {},
        )


def _unix_time(iso: object) -> int:
    """A v2 timestamp (ISO 8601) as unix time; 0 when it is not one."""
    try:
        return int(datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


@dataclass(frozen=True)
class ThinEvent:
    """A thin (v2) event as the notification names it, with the data fetched from Stripe."""

    id: str
    type: str
    created: int  # unix time
    related_object_id: str | None
    data: Json
