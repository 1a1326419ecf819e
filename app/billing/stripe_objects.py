"""Reading Stripe's objects as the gateway returns them (JSON): ids, times, plan items."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from app.catalog.models import Catalog

Json = dict[str, Any]
# What these helpers read: a Stripe object as the gateway types it, or as a webhook sends it.
StripeObject = Mapping[str, Any]


def ts(value: Any) -> datetime | None:
    """A Stripe timestamp (seconds) as an aware UTC datetime; None when unset."""
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def ref_id(value: Any) -> str | None:
    """An expandable field: an id, or the expanded object's id."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def created_order(sub: StripeObject) -> tuple[int, str]:
    """Orders subscriptions by Stripe's `created` (the id breaks a tie)."""
    return int(sub.get("created") or 0), str(sub.get("id") or "")


def lookup_key(item: StripeObject) -> str | None:
    """The lookup key of a subscription item's price."""
    key = (item.get("price") or {}).get("lookup_key")
    return key if isinstance(key, str) and key else None


def is_metered(item: StripeObject) -> bool:
    recurring = (item.get("price") or {}).get("recurring") or {}
    return bool(recurring.get("usage_type") == "metered")


def plan_item(catalog: Catalog, sub: StripeObject) -> StripeObject | None:
    """The subscription item that says which plan it is: the licensed item whose price's
    lookup key is a plan price. A plan with overage also has metered items (one per billed
    meter); they carry no plan, and Stripe does not promise the items' order."""
    items: list[StripeObject] = list((sub.get("items") or {}).get("data") or [])
    for item in items:
        key = lookup_key(item)
        if key and catalog.plan_for_lookup_key(key) is not None:
            return item
    licensed = [item for item in items if not is_metered(item)]
    candidates = licensed or items
    return candidates[0] if candidates else None


def new_attempt() -> str:
    """A fresh id for an idempotency key of a user action that may legitimately repeat."""
    return uuid.uuid4().hex[:16]
