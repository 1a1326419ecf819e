"""Customer portal configurations: `POST`/`GET /v1/billing_portal/configurations`, `/{id}`.

As at Stripe, a configuration made through the API is never the default (`is_default:
false`, and no parameter makes it one): the default is the configuration the Dashboard's
customer portal settings save, and portal sessions created without `configuration` use it.
The helper `POST /_emulator/billing_portal/configurations/{id}/default` stands in for saving
those settings: that configuration becomes the default, the previous default stops being
one. A portal session names the default as its `configuration` (without one the emulator
still opens a session, naming `bpc_emulator`; Stripe refuses until the settings are saved).
The emulator's portal page does not yet hide what a configuration turns off.
"""

from __future__ import annotations

import copy
from typing import Any

from app.stripe_emulator.core import Emulator, bool_param, metadata_update, paginate, require
from app.stripe_emulator.errors import StripeError, missing
from app.stripe_emulator.routing import ApiRequest, helper, route
from app.stripe_emulator.store import new_id

KIND = "billing_portal.configuration"
NO_DEFAULT = "bpc_emulator"

# Each feature as Stripe shows it when the request leaves it out.
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "customer_update": {"allowed_updates": [], "enabled": False},
    "invoice_history": {"enabled": False},
    "payment_method_update": {"enabled": False, "payment_method_configuration": None},
    "subscription_cancel": {
        "cancellation_reason": {"enabled": False, "options": []},
        "enabled": False,
        "mode": "at_period_end",
        "proration_behavior": "none",
    },
    "subscription_pause": {
        "duration": {
            "interval_options": [{"interval": "month", "interval_count": 1}],
            "type": "interval_options",
        },
        "enabled": False,
    },
    "subscription_update": {
        "billing_cycle_anchor": None,
        "default_allowed_updates": [],
        "enabled": False,
        "products": [],
        "proration_behavior": "none",
        "schedule_at_period_end": {"conditions": []},
        "trial_update_behavior": "end_trial",
    },
}
# Features whose `enabled` a create must give (the SDK's create params require it).
ENABLED_REQUIRED = (
    "customer_update",
    "invoice_history",
    "payment_method_update",
    "subscription_cancel",
    "subscription_update",
)


def default_configuration(emu: Emulator) -> dict[str, Any] | None:
    for found in emu.store.all(KIND):
        if found["is_default"]:
            return found
    return None


def session_configuration_id(emu: Emulator) -> str:
    """The `configuration` a portal session created without one gets."""
    found = default_configuration(emu)
    return str(found["id"]) if found else NO_DEFAULT


def _merge(current: dict[str, Any], raw: Any, path: str) -> dict[str, Any]:
    """`current` with the request's hash `raw` applied, each value read as the type the
    current value has (booleans, lists, nested hashes, strings)."""
    if raw == "":
        return current
    if not isinstance(raw, dict):
        raise StripeError(400, "Invalid hash", param=path)
    merged = dict(current)
    for key, value in raw.items():
        at = f"{path}[{key}]"
        old = current.get(key)
        if isinstance(old, bool):
            merged[key] = bool_param(raw, key)
        elif isinstance(old, list):
            merged[key] = _list(value, at)
        elif isinstance(old, dict):
            merged[key] = _merge(old, value, at)
        else:
            merged[key] = value if value != "" else None
    return merged


def _list(value: Any, path: str) -> list[Any]:
    if value == "":
        return []
    items = value if isinstance(value, list) else [value]
    if path.endswith("[products]"):
        return [_product(item, f"{path}[{i}]") for i, item in enumerate(items)]
    if path.endswith("[conditions]"):
        return [dict(item) if isinstance(item, dict) else {"type": item} for item in items]
    return list(items)


def _product(raw: Any, path: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise StripeError(400, "Invalid hash", param=path)
    prices = raw.get("prices") or []
    return {
        "adjustable_quantity": {"enabled": False, "maximum": None, "minimum": 1},
        "prices": prices if isinstance(prices, list) else [prices],
        "product": require(raw, "product"),
    }


def _features(current: dict[str, Any], raw: Any, *, creating: bool) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise StripeError(400, "Invalid hash", param="features")
    features = copy.deepcopy(current)
    for name, value in raw.items():
        if (
            creating
            and name in ENABLED_REQUIRED
            and (not isinstance(value, dict) or value.get("enabled") in (None, ""))
        ):
            raise missing(f"features[{name}][enabled]")
        features[name] = _merge(features[name], value, f"features[{name}]")
    return features


def _apply(config: dict[str, Any], p: dict[str, Any], *, creating: bool) -> None:
    if "features" in p:
        config["features"] = _features(config["features"], p["features"], creating=creating)
    if "business_profile" in p:
        config["business_profile"] = _merge(
            config["business_profile"], p["business_profile"], "business_profile"
        )
    if "login_page" in p:
        enabled = bool(_merge({"enabled": False}, p["login_page"], "login_page")["enabled"])
        config["login_page"] = {
            "enabled": enabled,
            "url": f"{_base(config)}/login" if enabled else None,
        }
    for name in ("default_return_url", "name"):
        if name in p:
            config[name] = p[name] or None
    active = bool_param(p, "active")
    if active is not None:
        config["active"] = active
    config["metadata"] = metadata_update(config["metadata"], p)


def _base(config: dict[str, Any]) -> str:
    return f"https://billing.stripe.com/p/login/test_{config['id'][4:16]}"


@route("POST", "/v1/billing_portal/configurations")
def create_configuration(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    require(req.params, "features")
    now = emu.global_now()
    config: dict[str, Any] = {
        "id": new_id("bpc"),
        "object": KIND,
        "active": True,
        "application": None,
        "business_profile": {
            "headline": None,
            "privacy_policy_url": None,
            "terms_of_service_url": None,
        },
        "created": now,
        "default_return_url": None,
        "features": copy.deepcopy(DEFAULT_FEATURES),
        "is_default": False,
        "livemode": False,
        "login_page": {"enabled": False, "url": None},
        "metadata": {},
        "name": None,
        "updated": now,
    }
    _apply(config, req.params, creating=True)
    return emu.save(config)


@route("POST", "/v1/billing_portal/configurations/{id}")
def update_configuration(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    config = emu.load(req["id"], KIND, "configuration")
    _apply(config, req.params, creating=False)
    if config["is_default"] and not config["active"]:
        raise StripeError(400, "The default configuration cannot be deactivated.", param="active")
    config["updated"] = emu.global_now()
    return emu.save(config)


@route("GET", "/v1/billing_portal/configurations/{id}")
def retrieve_configuration(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], KIND, "configuration")


@route("GET", "/v1/billing_portal/configurations")
def list_configurations(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    items = emu.store.all(KIND)
    for name in ("active", "is_default"):
        wanted = bool_param(req.params, name)
        if wanted is not None:
            items = [item for item in items if item[name] == wanted]
    return paginate(items, req.params, "/v1/billing_portal/configurations")


@helper("POST", "/_emulator/billing_portal/configurations/{id}/default")
def make_default(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    """What saving the Dashboard's customer portal settings does: this configuration is the
    one portal sessions use from now on."""
    config = emu.load(req["id"], KIND)
    if not config["active"]:
        raise StripeError(400, "An inactive configuration cannot be the default.", param="id")
    previous = default_configuration(emu)
    if previous is not None and previous["id"] != config["id"]:
        previous["is_default"] = False
        emu.save(previous)
    config["is_default"] = True
    config["updated"] = emu.global_now()
    return emu.save(config)
