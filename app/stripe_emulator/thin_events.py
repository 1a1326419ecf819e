"""Thin events (Stripe's v2 event destinations): `v1.billing.meter.error_report_triggered`.

The notification POSTed to `STRIPE_EMULATOR_THIN_EVENTS_URL` (default
`PUBLIC_URL/webhooks/stripe/thin`), signed like every webhook (`Stripe-Signature`), is small
and unversioned: `{"id", "object": "v2.core.event", "type", "created" (ISO 8601), "livemode",
"context", "reason", "related_object": {"id", "type": "billing.meter", "url"}}`;
`StripeClient.parse_event_notification` reads it. The event with its `data` comes from
`GET /v2/core/events/{id}` (`notification.fetch_event()`): `data.reason.error_count`,
`data.reason.error_types[].code|error_count|sample_errors[].error_message|request.identifier`,
`data.developer_message_summary`, `data.validation_start|validation_end`.

Meter events Stripe accepts and then rejects (an unknown customer) are noted per meter; the
emulator helper `POST /_emulator/meters/{id}/error_report` sends the report of those noted
so far (plus one given as `code`, `message`, `identifier`) and starts a new window."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from app.stripe_emulator.core import Emulator, render
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, helper, route
from app.stripe_emulator.store import new_id

ERROR_REPORT = "v1.billing.meter.error_report_triggered"


def iso(timestamp: int) -> str:
    """v2's timestamps: ISO 8601 in UTC with milliseconds."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def note_error(
    emu: Emulator, meter: dict[str, Any], code: str, message: str, identifier: str
) -> None:
    """Keep an error for the meter's next error report."""
    meter = emu.load(meter["id"], "billing.meter")
    meter.setdefault("_errors", []).append(
        {"code": code, "message": message, "identifier": identifier}
    )
    meter.setdefault("_errors_since", emu.now())
    emu.save(meter)


def _error_types(errors: list[dict[str, str]]) -> list[dict[str, Any]]:
    by_code: dict[str, list[dict[str, str]]] = {}
    for error in errors:
        by_code.setdefault(error["code"], []).append(error)
    return [
        {
            "code": code,
            "error_count": len(found),
            "sample_errors": [
                {"error_message": e["message"], "request": {"identifier": e["identifier"]}}
                for e in found[:5]
            ],
        }
        for code, found in by_code.items()
    ]


def emit_thin(
    emu: Emulator, type_: str, related: dict[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": new_id("evt_test", 40),
        "object": "v2.core.event",
        "created": emu.now(),
        "livemode": False,
        "type": type_,
        "_related": {"id": related["id"], "type": related["object"]},
        "_data": data,
    }
    emu.save(event)
    emu.store.enqueue_delivery(event["id"], time.time())
    if emu.on_event:
        emu.on_event()
    return event


def notification(event: dict[str, Any]) -> dict[str, Any]:
    """The thin payload as delivered (no `data`)."""
    related = event["_related"]
    return {
        "id": event["id"],
        "object": "v2.core.event",
        "context": None,
        "created": iso(event["created"]),
        "livemode": False,
        "reason": None,
        "related_object": {
            "id": related["id"],
            "type": related["type"],
            "url": f"/v1/billing/meters/{related['id']}",
        },
        "type": event["type"],
    }


def payload_of(event: dict[str, Any]) -> bytes:
    return json.dumps(notification(event), indent=2).encode()


@route("GET", "/v2/core/events/{id}")
def retrieve_event(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    event = emu.load(req["id"], "v2.core.event")
    return {**notification(event), "changes": None, "data": render(event["_data"])}


@helper("POST", "/_emulator/meters/{id}/error_report")
def error_report(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    meter = emu.load(req["id"], "billing.meter")
    errors = list(meter.get("_errors") or [])
    if req.params.get("code"):
        errors.append(
            {
                "code": str(req.params["code"]),
                "message": str(req.params.get("message") or "Meter event rejected."),
                "identifier": str(req.params.get("identifier") or new_id("mev")),
            }
        )
    if not errors:
        raise StripeError(
            400, "The meter has no rejected events to report (pass code= to make one)."
        )
    now = emu.now()
    count = len(errors)
    data = {
        "developer_message_summary": f"There {'is' if count == 1 else 'are'} {count} invalid "
        f"event{'' if count == 1 else 's'}",
        "reason": {"error_count": count, "error_types": _error_types(errors)},
        "validation_end": iso(now),
        "validation_start": iso(int(meter.get("_errors_since") or now)),
    }
    meter["_errors"], meter["_errors_since"] = [], None
    emu.save(meter)
    event = emit_thin(emu, ERROR_REPORT, meter, data)
    return {**notification(event), "data": data}
