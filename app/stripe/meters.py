"""Billing meters and meter events: v1 one at a time, the v2 stream in batches."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import stripe

from app.stripe.client import (
    GatewayBase,
    Json,
    MeterSessionExpired,
    MeterStreamUnavailable,
    _list,
    _request,
    _translate,
    idempotency_key,
)

if TYPE_CHECKING:
    from stripe.params.billing import MeterCreateParams, MeterEventCreateParams
    from stripe.params.v2.billing import (
        MeterEventStreamCreateParams,
        MeterEventStreamCreateParamsEvent,
    )


@dataclass(frozen=True)
class MeterEvent:
    """Usage for a Billing Meter: `value` for a customer at `timestamp` (unix time). Stripe
    counts an `identifier` once (for at least 24 h), whether it came through v1 or v2."""

    event_name: str
    stripe_customer_id: str
    value: int
    identifier: str
    timestamp: int


@dataclass(frozen=True)
class MeterEventSession:
    """A v2 meter event session: `token` authenticates stream calls until `expires_at`, on
    Stripe's clock (as is `created`: the difference is its life on any clock)."""

    token: str
    created: datetime
    expires_at: datetime


METER_STREAM_MAX_EVENTS = 100  # per meter_event_stream call


async def _meter_stream_call(call: Awaitable[Any], *, with_token: bool) -> Any:
    """Await a v2 meter stream call: an expired (or, `with_token`, refused) session token is
    `MeterSessionExpired`; an endpoint the account lacks (404, 403) `MeterStreamUnavailable`."""
    try:
        return await call
    except stripe.StripeError as exc:
        expired = isinstance(exc, stripe.TemporarySessionExpiredError) or (
            with_token and isinstance(exc, stripe.AuthenticationError)
        )
        message = exc.user_message or str(exc)
        if expired:
            raise MeterSessionExpired(message, http_status=exc.http_status) from exc
        if exc.http_status in (403, 404):
            raise MeterStreamUnavailable(message, http_status=exc.http_status) from exc
        raise _translate(exc) from exc


class MeterCalls(GatewayBase):
    # Billing meters ---------------------------------------------------------------------

    async def list_meters(self) -> list[Json]:
        return await _list(self.client.v1.billing.meters.list_async({"limit": 100}))

    async def create_meter(
        self,
        *,
        display_name: str,
        event_name: str,
        formula: Literal["count", "sum", "last"],
        key: str,
    ) -> Json:
        params: MeterCreateParams = {
            "display_name": display_name,
            "event_name": event_name,
            "default_aggregation": {"formula": formula},
            "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": {"event_payload_key": "value"},
        }
        return await _request(
            self.client.v1.billing.meters.create_async(params, {"idempotency_key": key})
        )

    async def create_meter_event(
        self,
        *,
        event_name: str,
        stripe_customer_id: str,
        value: int,
        identifier: str,
        timestamp: int,
    ) -> Json:
        """Report usage; Stripe counts an `identifier` once, so a resend is harmless."""
        params: MeterEventCreateParams = {
            "event_name": event_name,
            "payload": {"stripe_customer_id": stripe_customer_id, "value": str(value)},
            "identifier": identifier,
            "timestamp": timestamp,
        }
        return await _request(
            self.client.v1.billing.meter_events.create_async(
                params, {"idempotency_key": idempotency_key("meter-event", identifier)}
            )
        )

    async def create_meter_event_session(self) -> MeterEventSession:
        """A token for the v2 meter event stream (15 minutes at Stripe). No idempotency key of
        ours: a replayed answer would be an old token (the SDK sends one per call, kept across
        its own retries)."""
        session = await _meter_stream_call(
            self.client.v2.billing.meter_event_session.create_async(), with_token=False
        )
        return MeterEventSession(
            token=str(session.authentication_token),
            created=datetime.fromisoformat(str(session.created)),
            expires_at=datetime.fromisoformat(str(session.expires_at)),
        )

    async def send_meter_events(self, token: str, events: Sequence[MeterEvent]) -> None:
        """Up to `METER_STREAM_MAX_EVENTS` events in one v2 stream call, on the `meter_events`
        address with a session's token. Stripe takes the call whole or refuses it (and checks
        the events later: `v1.billing.meter.error_report_triggered`); a resend is counted once
        (identifiers), so the SDK's own idempotency key is enough."""
        if not 0 < len(events) <= METER_STREAM_MAX_EVENTS:
            raise ValueError(f"1 to {METER_STREAM_MAX_EVENTS} events per call, not {len(events)}")
        batch: list[MeterEventStreamCreateParamsEvent] = [
            {
                "event_name": event.event_name,
                "identifier": event.identifier,
                "payload": {
                    "stripe_customer_id": event.stripe_customer_id,
                    "value": str(event.value),
                },
                "timestamp": datetime.fromtimestamp(event.timestamp, UTC).isoformat(),
            }
            for event in events
        ]
        params: MeterEventStreamCreateParams = {"events": batch}
        await _meter_stream_call(
            self.client.v2.billing.meter_event_stream.create_async(params, {"api_key": token}),
            with_token=True,
        )
