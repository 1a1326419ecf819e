"""The emulator's shared state: store, clocks, object loading, rendering, expansion, events."""

from __future__ import annotations

import contextvars
import copy
import time
from collections.abc import Callable
from typing import Any, cast

from app.stripe_emulator.errors import StripeError, missing, no_such
from app.stripe_emulator.options import API_VERSION, EmulatorOptions
from app.stripe_emulator.store import Store, new_id

# (request id, idempotency key) of the API call being handled, for events' `request`.
current_request: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "current_request", default=(None, None)
)

# The one table of id prefixes (`cus_`, `in_`, ...) and the object type each names.
KIND_BY_PREFIX = {
    "cus": "customer",
    "prod": "product",
    "price": "price",
    "cs": "checkout.session",
    "sub": "subscription",
    "si": "subscription_item",
    "in": "invoice",
    "pm": "payment_method",
    "pi": "payment_intent",
    "seti": "setup_intent",
    "evt": "event",
    "mtr": "billing.meter",
    "clock": "test_helpers.test_clock",
    "bps": "billing_portal.session",
    "bpc": "billing_portal.configuration",
    "we": "webhook_endpoint",
    "pmc": "payment_method_configuration",
    "acct": "account",
    "ch": "charge",
    "re": "refund",
    "dp": "dispute",
    "cn": "credit_note",
    "txi": "tax_id",
    "promo": "promotion_code",
    "di": "discount",
}


def render(value: Any) -> Any:
    """A deep copy without the emulator's private `_` fields."""
    if isinstance(value, dict):
        return {k: render(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [render(v) for v in value]
    return value


def previous_attributes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Stripe's `data.previous_attributes`: old values of what changed, nested dicts diffed."""
    changed: dict[str, Any] = {}
    for key, old_value in old.items():
        if key.startswith("_"):
            continue
        new_value = new.get(key)
        if old_value == new_value:
            continue
        if (
            isinstance(old_value, dict)
            and isinstance(new_value, dict)
            and "object" not in old_value
        ):
            changed[key] = previous_attributes(old_value, new_value)
        else:
            changed[key] = render(old_value)
    return changed


class Emulator:
    def __init__(self, options: EmulatorOptions) -> None:
        self.options = options
        self.store = Store(options.db_path)
        self.on_event: Callable[[], None] | None = None

    # time

    def global_now(self) -> int:
        return int(time.time()) + int(self.store.meta("clock_offset", "0") or 0)

    def advance_global(self, seconds: int) -> int:
        offset = int(self.store.meta("clock_offset", "0") or 0) + seconds
        self.store.set_meta("clock_offset", str(offset))
        return self.global_now()

    def now(self, clock_id: str | None = None) -> int:
        if clock_id:
            clock = self.store.get(clock_id)
            if clock:
                return int(clock["frozen_time"])
        return self.global_now()

    def clock_of(self, obj: dict[str, Any]) -> str | None:
        if obj.get("test_clock"):
            return cast(str, obj["test_clock"])
        customer_id = obj.get("customer")
        if obj.get("object") != "customer" and isinstance(customer_id, str):
            customer = self.store.get(customer_id)
            if customer:
                return customer.get("test_clock")
        return None

    def now_for(self, obj: dict[str, Any]) -> int:
        return self.now(self.clock_of(obj))

    # objects

    def load(self, object_id: Any, kind: str, param: str = "id") -> dict[str, Any]:
        if not isinstance(object_id, str) or not object_id:
            raise missing(param)
        obj = self.store.get(object_id)
        if obj is None or obj.get("object") != kind or obj.get("deleted"):
            raise no_such(kind, object_id, param)
        return obj

    def save(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.store.put(obj)

    def expand(self, value: Any, paths: list[str]) -> Any:
        for path in paths:
            if not isinstance(path, str):
                raise StripeError(400, "Invalid expand parameter.", param="expand")
            value = self._expand_path(value, path.split("."))
        return value

    def _expand_path(self, value: Any, path: list[str]) -> Any:
        if not path:
            return value
        if isinstance(value, list):
            return [self._expand_path(item, path) for item in value]
        if not isinstance(value, dict):
            return value
        key, rest = path[0], path[1:]
        if key not in value:
            # Fields Stripe only returns when expanded (checkout line_items) are kept as `_field`.
            if "_" + key not in value:
                return value
            value[key] = value["_" + key]
        child = value[key]
        if isinstance(child, str):
            loaded = self.store.get(child)
            if loaded is not None:
                child = render(loaded)
        value[key] = self._expand_path(child, rest)
        return value

    # events

    def emit(
        self,
        type_: str,
        obj: dict[str, Any],
        previous: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        request_id, idempotency_key = current_request.get()
        event: dict[str, Any] = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now_for(obj),
            "data": {"object": render(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": request_id, "idempotency_key": idempotency_key},
            "type": type_,
        }
        if previous is not None:
            event["data"]["previous_attributes"] = previous
        self.store.put(event)
        self.store.enqueue_delivery(event["id"], time.time())
        if self.on_event:
            self.on_event()
        return event

    def update(
        self, obj: dict[str, Any], changes: Callable[[dict[str, Any]], None], event: str | None
    ) -> dict[str, Any]:
        """Apply `changes` to a copy, save it and emit `event` with previous attributes."""
        before = copy.deepcopy(obj)
        changes(obj)
        self.save(obj)
        if event:
            previous = previous_attributes(before, obj)
            if previous:
                self.emit(event, obj, previous)
        return obj


def list_of(
    emu: Emulator, kind: str, params: dict[str, Any], url: str, *filters: str
) -> dict[str, Any]:
    """A list endpoint: objects of `kind`, newest first, kept when each filter parameter
    given equals the object's field of that name; paginated."""
    items = [
        obj
        for obj in emu.store.all(kind)
        if all(not params.get(name) or obj.get(name) == params[name] for name in filters)
    ]
    return paginate(items, params, url)


def paginate(items: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
    limit = _int_param(params, "limit", 10)
    if not 1 <= limit <= 100:
        raise StripeError(
            400,
            "Invalid integer: limit must be between 1 and 100.",
            code="parameter_invalid_integer",
            param="limit",
        )
    ids = [item["id"] for item in items]
    after, before = params.get("starting_after"), params.get("ending_before")
    if after:
        if after not in ids:
            raise no_such("object", after, "starting_after")
        rest = items[ids.index(after) + 1 :]
        page, has_more = rest[:limit], len(rest) > limit
    elif before:
        if before not in ids:
            raise no_such("object", before, "ending_before")
        rest = items[: ids.index(before)]
        page, has_more = rest[-limit:], len(rest) > limit
    else:
        page, has_more = items[:limit], len(items) > limit
    return {"object": "list", "data": [render(i) for i in page], "has_more": has_more, "url": url}


def _int_param(params: dict[str, Any], name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise StripeError(
            400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name
        ) from None


def int_param(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    if params.get(name) in (None, ""):
        return default
    return _int_param(params, name, 0)


def bool_param(params: dict[str, Any], name: str, default: bool | None = None) -> bool | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if raw in ("true", True):
        return True
    if raw in ("false", False):
        return False
    raise StripeError(400, f"Invalid boolean: {raw}", code="parameter_invalid_boolean", param=name)


def require(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value in (None, "", [], {}):
        raise missing(name)
    return value


def metadata_update(current: dict[str, str], params: dict[str, Any]) -> dict[str, str]:
    """Stripe merges metadata; an empty string unsets a key, `metadata=""` clears all."""
    if "metadata" not in params:
        return current
    raw = params["metadata"]
    if raw == "":
        return {}
    if not isinstance(raw, dict):
        raise StripeError(400, "Invalid metadata: must be a hash.", param="metadata")
    merged = dict(current)
    for key, value in raw.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged
