"""What a plan change does to a live Stripe subscription's items (no I/O).

A subscription to a plan has the plan's licensed item and one metered item per meter the
plan bills overage for. Moving it to another plan gives the licensed item the new plan's
price, adds the new plan's missing metered prices and removes the others (a metered item is
not prorated; Stripe bills the usage reported to its meter). The review page's preview, the
confirmed update and the plain `BillingService.change_plan` all send these same items.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from app.billing.stripe_objects import is_metered, lookup_key, plan_item
from app.catalog.models import Catalog, Interval, Plan
from app.stripe.gateway import (
    ItemChange,
    LineItem,
    PaymentBehavior,
    ProrationBehavior,
    StripeGatewayError,
)
from app.stripe.objects import Subscription as StripeSubscription
from app.stripe.objects import SubscriptionSchedule


def overage_lookup_keys(plan: Plan, interval: Interval) -> list[str]:
    """The metered prices a subscription to `plan` carries besides the plan's price."""
    return [plan.overage_lookup_key(q.meter_code, interval) for q in plan.overage_quotas()]


@dataclass(frozen=True)
class ItemsChange:
    """The items change in lookup keys, before Stripe's price ids are known."""

    plan_item_id: str
    plan_key: str
    add: list[str]
    remove: list[str]
    same_plan: bool

    @property
    def nothing(self) -> bool:
        return self.same_plan and not self.add and not self.remove

    def item_changes(self, price_ids: dict[str, str]) -> list[ItemChange]:
        changes = [ItemChange(id=self.plan_item_id, price=price_ids[self.plan_key])]
        changes += [ItemChange(id=item_id, deleted=True) for item_id in self.remove]
        changes += [ItemChange(price=price_ids[key]) for key in self.add]
        return changes


def items_change(
    catalog: Catalog, remote: StripeSubscription, plan: Plan, interval: Interval
) -> ItemsChange:
    item = plan_item(catalog, remote)
    if item is None:
        raise StripeGatewayError("The Stripe subscription has no items.")
    price = plan.price(interval)
    assert price is not None
    plan_key = price.lookup_key(plan.slug)
    wanted = overage_lookup_keys(plan, interval)
    metered = [
        other
        for other in (remote.get("items") or {}).get("data") or []
        if other["id"] != item["id"] and is_metered(other)
    ]
    have = {lookup_key(other) for other in metered}
    return ItemsChange(
        plan_item_id=str(item["id"]),
        plan_key=plan_key,
        add=[key for key in wanted if key not in have],
        remove=[str(other["id"]) for other in metered if lookup_key(other) not in wanted],
        same_plan=lookup_key(item) == plan_key,
    )


@dataclass(frozen=True)
class PlannedChange:
    """A change of a live subscription (`remote`) to `plan` at `interval`, as sent to Stripe."""

    remote: StripeSubscription
    plan: Plan
    interval: Interval
    items: list[ItemChange]
    same_plan: bool
    end_trial: bool

    @property
    def proration_behavior(self) -> ProrationBehavior:
        # Only the licensed item is prorated; the same plan only gains its metered items.
        return "none" if self.same_plan else "always_invoice"

    @property
    def payment_behavior(self) -> PaymentBehavior | None:
        # A new plan takes effect only if its proration is paid: a declined card makes
        # Stripe refuse the update (StripeCardError) and the subscription stays as it was.
        return None if self.same_plan else "error_if_incomplete"

    @property
    def subscription_id(self) -> str:
        return str(self.remote["id"])


@dataclass(frozen=True)
class ScheduledChange:
    """The plan a subscription schedule moves the subscription to, and when."""

    plan_slug: str | None
    interval: str | None
    at: datetime


def scheduled_change(schedule: SubscriptionSchedule) -> ScheduledChange | None:
    """What a live schedule does next: the phase after the current one (its plan from the
    schedule's metadata, which the review's confirm writes; None for one made elsewhere)."""
    if schedule.get("status") not in ("not_started", "active"):
        return None
    current = schedule.get("current_phase") or {}
    ends = current.get("end_date")
    following = [p for p in schedule.get("phases") or [] if ends and p.get("start_date") == ends]
    if not following or ends is None:
        return None
    metadata = schedule.get("metadata") or {}
    return ScheduledChange(
        plan_slug=metadata.get("plan") or None,
        interval=metadata.get("interval") or None,
        at=datetime.fromtimestamp(int(ends), tz=UTC),
    )


def current_items(remote: StripeSubscription) -> list[LineItem]:
    """The subscription's prices as a schedule phase lists them (metered: no quantity)."""
    return [
        LineItem(str(item["price"]["id"]), None if is_metered(item) else item.get("quantity") or 1)
        for item in (remote.get("items") or {}).get("data") or []
    ]


def changed_items(remote: StripeSubscription, change: PlannedChange) -> list[LineItem]:
    """The subscription's prices once `change` is made (a schedule's next phase)."""
    by_id = {c.id: c for c in change.items if c.id is not None}
    items: list[LineItem] = []
    for item in (remote.get("items") or {}).get("data") or []:
        update = by_id.get(item["id"])
        if update is not None and update.deleted:
            continue
        price = update.price if update is not None and update.price else item["price"]["id"]
        items.append(LineItem(str(price), None if is_metered(item) else item.get("quantity") or 1))
    items += [LineItem(c.price, None) for c in change.items if c.id is None and c.price]
    return items
