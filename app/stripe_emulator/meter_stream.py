"""Meter events, v1 and v2: one way to record them (a repeated `identifier` is counted once),
and Stripe's v2 high-throughput stream.

- `POST /v2/billing/meter_event_session` (secret key): `{"object":
  "v2.billing.meter_event_session", "id", "authentication_token", "created", "expires_at",
  "livemode"}`; the token is valid for 15 minutes of the emulator's clock.
- `POST /v2/billing/meter_event_stream` (the SDK sends it to `base_addresses["meter_events"]`,
  `Authorization: Bearer <authentication_token>`, JSON `{"events": [{"event_name",
  "identifier", "payload", "timestamp"}]}`, 1 to 100 events): answers `{}`; an expired token
  `401` `temporary_session_expired` / `billing_meter_event_session_expired`.
- `POST /v2/billing/meter_events` (secret key, JSON): one event, a `v2.billing.meter_event`.

Events are checked as Stripe checks them after accepting them: one whose customer does not
exist is not counted and is kept as an error for its meter's next error report
(`POST /_emulator/meters/{id}/error_report` sends it, see `thin_events.py`)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from app.stripe_emulator import thin_events
from app.stripe_emulator.core import Emulator
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, route
from app.stripe_emulator.store import new_id
from app.stripe_emulator.thin_events import iso

SESSION_SECONDS = 15 * 60
MAX_STREAM_EVENTS = 100


def parse_iso(value: Any, param: str) -> int:
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise StripeError(400, f"Invalid timestamp: {value}", param=param) from None


def meter_for(emu: Emulator, event_name: str) -> dict[str, Any] | None:
    for meter in emu.store.all("billing.meter"):
        if meter["event_name"] == event_name and meter["status"] == "active":
            return meter
    return None


_IDENTIFIER_KEY = "meter_event_identifier:"


def record(
    emu: Emulator,
    event_name: str,
    payload: dict[str, Any],
    identifier: str | None,
    timestamp: int | None,
) -> dict[str, Any]:
    """Store a meter event (or return the one already stored under `identifier`)."""
    if identifier:
        # One lookup by identifier (a scan of every stored event grew with each one).
        existing_id = emu.store.meta(_IDENTIFIER_KEY + identifier)
        existing = emu.store.get(existing_id) if existing_id else None
        if existing is not None:
            return existing
    meter = meter_for(emu, event_name)
    customer_key = meter["customer_mapping"]["event_payload_key"] if meter else "stripe_customer_id"
    customer_id = payload.get(customer_key)
    known = isinstance(customer_id, str) and emu.store.get(customer_id) is not None
    now = emu.now_for({"customer": customer_id}) if known else emu.now()
    event: dict[str, Any] = {
        "id": new_id("mtrevt"),
        "object": "billing.meter_event",
        "created": now,
        "event_name": event_name,
        "identifier": identifier or new_id("mev"),
        "livemode": False,
        "payload": {k: str(v) for k, v in payload.items()},
        "timestamp": now if timestamp is None else timestamp,
        # Stripe rejects an event for an unknown customer after accepting it: not counted.
        "_customer": customer_id if known else None,
    }
    emu.save(event)
    emu.store.set_meta(_IDENTIFIER_KEY + event["identifier"], event["id"])
    if meter is not None and not known:
        thin_events.note_error(
            emu,
            meter,
            "meter_event_customer_not_found" if customer_id else "meter_event_no_customer_defined",
            f"No customer found for {customer_key}: {customer_id}"
            if customer_id
            else f"The payload has no {customer_key}.",
            event["identifier"],
        )
    return event


def _v2_event(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "v2.billing.meter_event",
        "created": iso(event["created"]),
        "event_name": event["event_name"],
        "identifier": event["identifier"],
        "livemode": False,
        "payload": event["payload"],
        "timestamp": iso(event["timestamp"]),
    }


def _record_v2(emu: Emulator, raw: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise StripeError(400, f"Invalid object: {prefix or 'body'}", param=prefix or None)
    name, payload = raw.get("event_name"), raw.get("payload")
    for field, ok in (
        ("event_name", isinstance(name, str) and name),
        ("payload", isinstance(payload, dict)),
    ):
        if not ok:
            raise StripeError(
                400,
                f"Missing required param: {field}.",
                code="parameter_missing",
                param=f"{prefix}{field}",
            )
    assert isinstance(name, str) and isinstance(payload, dict)
    timestamp = raw.get("timestamp")
    at = parse_iso(timestamp, f"{prefix}timestamp") if timestamp else None
    return record(emu, name, payload, raw.get("identifier") or None, at)


def create_session(emu: Emulator) -> dict[str, Any]:
    now = emu.now()
    session: dict[str, Any] = {
        "id": new_id("mes"),
        "object": "v2.billing.meter_event_session",
        "authentication_token": "mes_tok_" + secrets.token_urlsafe(24),
        "created": iso(now),
        "expires_at": iso(now + SESSION_SECONDS),
        "livemode": False,
    }
    emu.store.set_meta("meter_event_session:" + session["authentication_token"], str(now))
    return session


def check_session_token(emu: Emulator, token: str) -> StripeError | None:
    started = emu.store.meta("meter_event_session:" + token) if token else None
    if started is None:
        return StripeError(
            401,
            "The meter event session token is not valid.",
            type="authentication_error",
            code="billing_meter_event_session_not_found",
        )
    if emu.now() >= int(started) + SESSION_SECONDS:
        return StripeError(
            401,
            "The meter event session has expired. Create a new one.",
            type="temporary_session_expired",
            code="billing_meter_event_session_expired",
        )
    return None


@route("POST", "/v2/billing/meter_event_session")
def meter_event_session(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return create_session(emu)


@route("POST", "/v2/billing/meter_event_stream")
def meter_event_stream(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    events = req.params.get("events")
    if not isinstance(events, list) or not events:
        raise StripeError(
            400, "Missing required param: events.", code="parameter_missing", param="events"
        )
    if len(events) > MAX_STREAM_EVENTS:
        raise StripeError(
            400,
            f"A request can carry at most {MAX_STREAM_EVENTS} events.",
            param="events",
        )
    for index, raw in enumerate(events):
        _record_v2(emu, raw, f"events[{index}].")
    return {}


@route("POST", "/v2/billing/meter_events")
def create_v2_meter_event(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return _v2_event(_record_v2(emu, req.params, ""))
