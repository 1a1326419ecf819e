"""Checkout and portal sessions, events, billing meters and test clocks."""

from __future__ import annotations

import secrets
from typing import Any

from app.stripe_emulator import (
    checkout,
    meter_stream,
    objects,
    payments,
    portal_configurations,
    subscription_lines,
    subscriptions,
)
from app.stripe_emulator.core import Emulator, int_param, paginate, require
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, route
from app.stripe_emulator.store import new_id

# Checkout


@route("POST", "/v1/checkout/sessions")
def create_checkout_session(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return checkout.create_session(emu, req.params)


@route("GET", "/v1/checkout/sessions/{id}")
def retrieve_checkout_session(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "checkout.session")


@route("GET", "/v1/checkout/sessions/{id}/line_items")
def list_checkout_line_items(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    session = emu.load(req["id"], "checkout.session")
    return paginate(
        session["_line_items"]["data"], req.params, f"/v1/checkout/sessions/{req['id']}/line_items"
    )


@route("POST", "/v1/checkout/sessions/{id}/expire")
def expire_checkout_session(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return checkout.expire(emu, emu.load(req["id"], "checkout.session"))


@route("GET", "/v1/checkout/sessions")
def list_checkout_sessions(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    items = emu.store.all("checkout.session", p.get("customer") or None)
    for name in ("subscription", "payment_intent", "status"):
        if p.get(name):
            items = [s for s in items if s.get(name) == p[name]]
    return paginate(items, p, "/v1/checkout/sessions")


# Billing portal


@route("POST", "/v1/billing_portal/sessions")
def create_portal_session(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    customer = payments.require_customer(emu, require(p, "customer"))
    session_id = new_id("bps")
    secret = secrets.token_urlsafe(12)
    session = {
        "id": session_id,
        "object": "billing_portal.session",
        "configuration": portal_configurations.session_configuration_id(emu),
        "created": emu.now_for(customer),
        "customer": customer["id"],
        "flow": None,
        "livemode": False,
        "locale": None,
        "on_behalf_of": None,
        "return_url": p.get("return_url") or None,
        "url": f"{emu.options.base_url}/portal/{session_id}/{secret}",
        "_secret": secret,
    }
    emu.save(session)
    return session


# Events


@route("GET", "/v1/events")
def list_events(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    items = emu.store.all("event")
    if p.get("type"):
        pattern = p["type"]
        if pattern.endswith("*"):
            items = [e for e in items if e["type"].startswith(pattern[:-1])]
        else:
            items = [e for e in items if e["type"] == pattern]
    if isinstance(p.get("types"), list):
        items = [e for e in items if e["type"] in p["types"]]
    created = p.get("created")
    if isinstance(created, dict):
        for op, test in (
            ("gt", int.__gt__),
            ("gte", int.__ge__),
            ("lt", int.__lt__),
            ("lte", int.__le__),
        ):
            if created.get(op):
                bound = int(created[op])
                items = [e for e in items if test(int(e["created"]), bound)]
    elif created:
        items = [e for e in items if e["created"] == int(created)]
    return paginate(items, p, "/v1/events")


@route("GET", "/v1/events/{id}")
def retrieve_event(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "event")


# Billing meters


@route("POST", "/v1/billing/meters")
def create_meter(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    display_name = require(p, "display_name")
    event_name = require(p, "event_name")
    aggregation = require(p, "default_aggregation")
    formula = require(aggregation, "formula") if isinstance(aggregation, dict) else None
    if formula not in {"sum", "count", "last"}:
        raise StripeError(
            400, "Invalid default_aggregation[formula]", param="default_aggregation[formula]"
        )
    for meter in emu.store.all("billing.meter"):
        if meter["event_name"] == event_name and meter["status"] == "active":
            raise StripeError(
                400,
                f"An active meter with event_name `{event_name}` already exists.",
                param="event_name",
            )
    mapping = p.get("customer_mapping") or {}
    value = p.get("value_settings") or {}
    meter = objects.meter(
        emu.now(),
        display_name=display_name,
        event_name=event_name,
        default_aggregation={"formula": formula},
        customer_mapping={
            "event_payload_key": mapping.get("event_payload_key") or "stripe_customer_id",
            "type": mapping.get("type") or "by_id",
        },
        value_settings={"event_payload_key": value.get("event_payload_key") or "value"},
    )
    emu.save(meter)
    return meter


@route("GET", "/v1/billing/meters")
def list_meters(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    items = emu.store.all("billing.meter")
    if req.params.get("status"):
        items = [m for m in items if m["status"] == req.params["status"]]
    return paginate(items, req.params, "/v1/billing/meters")


@route("GET", "/v1/billing/meters/{id}")
def retrieve_meter(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "billing.meter")


@route("GET", "/v1/billing/meters/{id}/event_summaries")
def meter_event_summaries(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    meter = emu.load(req["id"], "billing.meter")
    p = req.params
    customer = payments.require_customer(emu, require(p, "customer"))
    start = int_param(p, "start_time")
    end = int_param(p, "end_time")
    if start is None:
        raise StripeError(
            400, "Missing required param: start_time.", code="parameter_missing", param="start_time"
        )
    if end is None:
        raise StripeError(
            400, "Missing required param: end_time.", code="parameter_missing", param="end_time"
        )
    summary = {
        "id": new_id("mtrusg"),
        "object": "billing.meter_event_summary",
        "aggregated_value": subscription_lines.aggregate_usage(
            emu, meter, customer["id"], start, end
        ),
        "end_time": end,
        "livemode": False,
        "meter": meter["id"],
        "start_time": start,
    }
    return paginate([summary], p, f"/v1/billing/meters/{meter['id']}/event_summaries")


@route("POST", "/v1/billing/meter_events")
def create_meter_event(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    event_name = require(p, "event_name")
    payload = require(p, "payload")
    if not isinstance(payload, dict):
        raise StripeError(400, "Invalid hash", param="payload")
    return meter_stream.record(
        emu, event_name, payload, p.get("identifier") or None, int_param(p, "timestamp")
    )


# Test clocks


@route("POST", "/v1/test_helpers/test_clocks")
def create_test_clock(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    frozen = int_param(req.params, "frozen_time")
    if frozen is None:
        raise StripeError(
            400,
            "Missing required param: frozen_time.",
            code="parameter_missing",
            param="frozen_time",
        )
    clock = objects.test_clock(emu.now(), frozen, req.params.get("name") or None)
    emu.save(clock)
    return clock


@route("GET", "/v1/test_helpers/test_clocks/{id}")
def retrieve_test_clock(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "test_helpers.test_clock")


@route("GET", "/v1/test_helpers/test_clocks")
def list_test_clocks(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return paginate(
        emu.store.all("test_helpers.test_clock"), req.params, "/v1/test_helpers/test_clocks"
    )


@route("DELETE", "/v1/test_helpers/test_clocks/{id}")
def delete_test_clock(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    clock = emu.load(req["id"], "test_helpers.test_clock")
    emu.store.delete(clock["id"])
    return {"id": clock["id"], "object": "test_helpers.test_clock", "deleted": True}


@route("POST", "/v1/test_helpers/test_clocks/{id}/advance")
def advance_test_clock(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    clock = emu.load(req["id"], "test_helpers.test_clock")
    frozen = int_param(req.params, "frozen_time")
    if frozen is None:
        raise StripeError(
            400,
            "Missing required param: frozen_time.",
            code="parameter_missing",
            param="frozen_time",
        )
    if frozen < clock["frozen_time"]:
        raise StripeError(
            400,
            "The test clock's frozen_time cannot be set to a time before its current frozen_time.",
            param="frozen_time",
        )
    # Renewals are processed synchronously, so the clock is ready when this returns.
    clock["frozen_time"] = frozen
    emu.save(clock)
    subscriptions.process_due(emu, clock["id"], frozen)
    return clock
