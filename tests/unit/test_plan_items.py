"""What a plan change does to a subscription's items, and what a schedule changes next (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.billing.plan_items import (
    PlannedChange,
    changed_items,
    current_items,
    items_change,
    scheduled_change,
)
from app.catalog.models import Catalog
from app.stripe.gateway import ItemChange, LineItem
from app.stripe.objects import SubscriptionSchedule

PRICE_IDS = {
    "plan_pro_monthly": "price_pro",
    "plan_business_monthly": "price_biz",
    "overage_business_api_calls_monthly": "price_calls",
}


def _item(item_id: str, key: str, *, metered: bool = False) -> dict[str, Any]:
    recurring = {"usage_type": "metered" if metered else "licensed"}
    return {
        "id": item_id,
        "quantity": None if metered else 1,
        "price": {"id": PRICE_IDS[key], "lookup_key": key, "recurring": recurring},
    }


BUSINESS = {
    "id": "sub_1",
    "status": "active",
    "items": {
        "data": [
            _item("si_calls", "overage_business_api_calls_monthly", metered=True),
            _item("si_plan", "plan_business_monthly"),
        ]
    },
}
PRO = {"id": "sub_2", "status": "active", "items": {"data": [_item("si_plan", "plan_pro_monthly")]}}


def test_business_to_pro_changes_the_plan_item_and_drops_the_metered_one(
    catalog: Catalog,
) -> None:
    pro = catalog.plan("pro")
    assert pro is not None
    change = items_change(catalog, BUSINESS, pro, "month")
    assert (change.plan_item_id, change.plan_key, change.add, change.remove) == (
        "si_plan",
        "plan_pro_monthly",
        [],
        ["si_calls"],
    )
    assert not change.same_plan and not change.nothing
    items = change.item_changes(PRICE_IDS)
    assert items == [
        ItemChange(id="si_plan", price="price_pro"),
        ItemChange("si_calls", None, True),
    ]
    planned = PlannedChange(BUSINESS, pro, "month", items, same_plan=False, end_trial=False)
    assert (planned.proration_behavior, planned.payment_behavior) == (
        "always_invoice",
        "error_if_incomplete",
    )
    # The schedule's phases: the prices now (metered without a quantity), then after.
    assert current_items(BUSINESS) == [LineItem("price_calls", None), LineItem("price_biz", 1)]
    assert changed_items(BUSINESS, planned) == [LineItem("price_pro", 1)]


def test_pro_to_business_adds_the_metered_price(catalog: Catalog) -> None:
    business = catalog.plan("business")
    assert business is not None
    change = items_change(catalog, PRO, business, "month")
    assert (change.add, change.remove) == (["overage_business_api_calls_monthly"], [])
    planned = PlannedChange(
        PRO, business, "month", change.item_changes(PRICE_IDS), same_plan=False, end_trial=False
    )
    assert changed_items(PRO, planned) == [LineItem("price_biz", 1), LineItem("price_calls", None)]
    assert items_change(catalog, BUSINESS, business, "month").nothing


def test_the_change_a_schedule_makes_next() -> None:
    end = int(datetime(2027, 1, 4, tzinfo=UTC).timestamp())
    schedule: SubscriptionSchedule = {
        "id": "sub_sched_1",
        "status": "active",
        "current_phase": {"start_date": end - 86400 * 31, "end_date": end},
        "phases": [
            {"start_date": end - 86400 * 31, "end_date": end},
            {"start_date": end, "end_date": end + 86400 * 31},
        ],
        "metadata": {"plan": "pro", "interval": "month"},
    }
    change = scheduled_change(schedule)
    assert change is not None
    assert (change.plan_slug, change.interval, change.at) == (
        "pro",
        "month",
        datetime(2027, 1, 4, tzinfo=UTC),
    )
    # In its last phase, or released, a schedule changes nothing more.
    last = {**schedule, "current_phase": {"start_date": end, "end_date": end + 86400 * 31}}
    assert scheduled_change(last) is None
    assert scheduled_change({**schedule, "status": "released"}) is None
    # One made elsewhere (no plan in its metadata) still says when.
    elsewhere = scheduled_change({**schedule, "metadata": {}})
    assert elsewhere is not None and elsewhere.plan_slug is None
