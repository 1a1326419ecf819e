"""Webhook endpoints: `POST`/`GET /v1/webhook_endpoints`, `/{id}` (retrieve, update, delete).

Stored as Stripe keeps them: `url`, `enabled_events` (event types of the pinned version, or
`*`), `api_version` (the version events are rendered in; null: the account's default),
`status` `enabled|disabled`, and a signing `secret` shown only in the create response. The
emulator's deliveries do not follow them: every event still goes to `PUBLIC_URL/webhooks/stripe`
signed with `STRIPE_WEBHOOK_SECRET`, as `stripe listen --forward-to` would forward them.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlparse

from app.stripe_emulator.core import Emulator, bool_param, metadata_update, paginate, require
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, route
from app.stripe_emulator.store import new_id

KIND = "webhook_endpoint"


def _url(value: Any) -> str:
    parsed = urlparse(str(value))
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise StripeError(400, f"Invalid URL: {value}", param="url", code="url_invalid")
    return str(value)


def _events(value: Any) -> list[str]:
    events = value if isinstance(value, list) else [value]
    if not events or events == [""]:
        raise StripeError(
            400,
            "Missing required param: enabled_events.",
            code="parameter_missing",
            param="enabled_events",
        )
    return [str(event) for event in dict.fromkeys(events)]


@route("POST", "/v1/webhook_endpoints")
def create_endpoint(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    url = _url(require(p, "url"))
    events = _events(require(p, "enabled_events"))
    endpoint: dict[str, Any] = {
        "id": new_id("we"),
        "object": KIND,
        "api_version": p.get("api_version") or None,
        "application": None,
        "created": emu.global_now(),
        "description": p.get("description") or None,
        "enabled_events": events,
        "livemode": False,
        "metadata": metadata_update({}, p),
        "status": "enabled",
        "url": url,
    }
    emu.save(endpoint)
    # The signing secret is part of the create response only.
    return {**endpoint, "secret": "whsec_" + secrets.token_hex(16)}


@route("GET", "/v1/webhook_endpoints/{id}")
def retrieve_endpoint(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], KIND, "webhook_endpoint")


@route("POST", "/v1/webhook_endpoints/{id}")
def update_endpoint(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    endpoint = emu.load(req["id"], KIND, "webhook_endpoint")
    p = req.params
    if "url" in p:
        endpoint["url"] = _url(require(p, "url"))
    if "enabled_events" in p:
        endpoint["enabled_events"] = _events(p["enabled_events"])
    if "description" in p:
        endpoint["description"] = p["description"] or None
    disabled = bool_param(p, "disabled")
    if disabled is not None:
        endpoint["status"] = "disabled" if disabled else "enabled"
    endpoint["metadata"] = metadata_update(endpoint["metadata"], p)
    return emu.save(endpoint)


@route("DELETE", "/v1/webhook_endpoints/{id}")
def delete_endpoint(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    endpoint = emu.load(req["id"], KIND, "webhook_endpoint")
    emu.store.delete(endpoint["id"])
    return {"id": endpoint["id"], "object": KIND, "deleted": True}


@route("GET", "/v1/webhook_endpoints")
def list_endpoints(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return paginate(emu.store.all(KIND), req.params, "/v1/webhook_endpoints")
