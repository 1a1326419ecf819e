"""Subscription schedules: phases a subscription moves through as its clock passes their dates
(e.g. a downgrade at the period end), then released or canceled (`end_behavior`)."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import billing_objects, subscriptions
from app.stripe_emulator.clock import add_interval
from app.stripe_emulator.core import Emulator, int_param, metadata_update
from app.stripe_emulator.errors import StripeError, missing
from app.stripe_emulator.store import new_id

END_BEHAVIORS = ("release", "cancel")
PRORATION_BEHAVIORS = ("always_invoice", "create_prorations", "none")
LIVE = ("not_started", "active")


def create(emu: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    sub_id = params.get("from_subscription")
    if not sub_id:
        raise StripeError(
            400,
            "The emulator creates subscription schedules from_subscription only.",
            code="parameter_missing",
            param="from_subscription",
        )
    if params.get("phases") or params.get("customer"):
        name = "phases" if params.get("phases") else "customer"
        raise StripeError(
            400,
            f"You cannot set `{name}` if `from_subscription` is set.",
            param=name,
        )
    sub = emu.load(sub_id, "subscription", "from_subscription")
    if sub.get("schedule"):
        raise StripeError(
            400,
            "You cannot migrate a subscription that is already attached to a schedule: "
            f"`{sub['schedule']}`.",
            param="from_subscription",
        )
    if sub["status"] in {"canceled", "incomplete_expired"}:
        raise StripeError(
            400, "You cannot migrate a canceled subscription.", param="from_subscription"
        )
    now = emu.now_for(sub)
    start, end = subscriptions.period_of(sub)
    items = [
        {"price": item["price"]["id"], "quantity": item.get("quantity") or 1}
        for item in sub["items"]["data"]
    ]
    phase = _phase(sub["currency"], start, end, items, "create_prorations")
    schedule = {
        "id": new_id("sub_sched"),
        "object": "subscription_schedule",
        "application": None,
        "billing_mode": sub["billing_mode"],
        "canceled_at": None,
        "completed_at": None,
        "created": now,
        "current_phase": {"start_date": start, "end_date": end},
        "customer": sub["customer"],
        "customer_account": None,
        "default_settings": _DEFAULT_SETTINGS,
        "end_behavior": "release",
        "livemode": False,
        "metadata": metadata_update({}, params),
        "phases": [phase],
        "released_at": None,
        "released_subscription": None,
        "status": "active",
        "subscription": sub["id"],
        "test_clock": sub.get("test_clock"),
    }
    emu.save(schedule)
    emu.emit("subscription_schedule.created", schedule)
    emu.update(sub, lambda s: s.update(schedule=schedule["id"]), "customer.subscription.updated")
    return schedule


_DEFAULT_SETTINGS = {
    "application_fee_percent": None,
    "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
    "billing_cycle_anchor": "automatic",
    "billing_thresholds": None,
    "collection_method": "charge_automatically",
    "default_payment_method": None,
    "description": None,
    "invoice_settings": {
        "account_tax_ids": None,
        "days_until_due": None,
        "issuer": {"type": "self"},
    },
    "on_behalf_of": None,
    "transfer_data": None,
}


def _phase(
    currency: str, start: int, end: int, items: list[dict[str, Any]], proration: str
) -> dict[str, Any]:
    return {
        "add_invoice_items": [],
        "application_fee_percent": None,
        "automatic_tax": None,
        "billing_cycle_anchor": None,
        "billing_thresholds": None,
        "collection_method": None,
        "currency": currency,
        "default_payment_method": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "end_date": end,
        "invoice_settings": None,
        "items": [
            {
                "billing_thresholds": None,
                "discounts": [],
                "metadata": {},
                "plan": item["price"],
                "price": item["price"],
                "quantity": item["quantity"],
                "tax_rates": [],
            }
            for item in items
        ],
        "metadata": {},
        "on_behalf_of": None,
        "proration_behavior": proration,
        "start_date": start,
        "transfer_data": None,
        "trial_end": None,
    }


def update(emu: Emulator, schedule: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    _require_live(schedule, "update")
    sub = emu.load(schedule["subscription"], "subscription")
    now = emu.now_for(sub)

    def change(s: dict[str, Any]) -> None:
        if "end_behavior" in params:
            if params["end_behavior"] not in END_BEHAVIORS:
                raise StripeError(
                    400,
                    "Invalid end_behavior: the emulator supports release or cancel",
                    param="end_behavior",
                )
            s["end_behavior"] = params["end_behavior"]
        s["metadata"] = metadata_update(s["metadata"], params)
        if "phases" in params:
            s["phases"] = _phases(emu, s, params["phases"], now)
            current = phase_at(s, now)
            if current is not None:
                s["current_phase"] = {
                    "start_date": current["start_date"],
                    "end_date": current["end_date"],
                }

    emu.update(schedule, change, "subscription_schedule.updated")
    current = phase_at(schedule, now)
    if current is not None and _items_of(sub) != _items_of_phase(current):
        behavior = params.get("proration_behavior") or current["proration_behavior"]
        _move(emu, sub, current, now, behavior)
    return schedule


def _phases(
    emu: Emulator, schedule: dict[str, Any], raw_phases: Any, now: int
) -> list[dict[str, Any]]:
    if not isinstance(raw_phases, list) or not raw_phases:
        raise StripeError(400, "Invalid array", param="phases")
    current = schedule["current_phase"]
    phases: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_phases):
        at = f"phases[{index}]"
        if not isinstance(raw, dict):
            raise StripeError(400, "Invalid hash", param=at)
        raw_items = raw.get("items")
        if not isinstance(raw_items, list) or not raw_items:
            raise missing(f"{at}[items]")
        items, prices = [], []
        for item_index, raw_item in enumerate(raw_items):
            param = f"{at}[items][{item_index}][price]"
            price = subscriptions.recurring_price(emu, raw_item.get("price"), param)
            prices.append(price)
            items.append(
                {"price": price["id"], "quantity": int_param(raw_item, "quantity", 1) or 1}
            )
        start = _timestamp(raw, "start_date", now, at)
        if start is None:
            start = phases[-1]["end_date"] if phases else current["start_date"]
        if index == 0 and current and start != current["start_date"]:
            raise StripeError(
                400,
                "You can not modify the start date of the current phase.",
                param=f"{at}[start_date]",
            )
        if phases and start != phases[-1]["end_date"]:
            raise StripeError(
                400,
                "Phases must be contiguous: each phase starts when the previous one ends.",
                param=f"{at}[start_date]",
            )
        end = _end(raw, start, prices[0], now, at)
        if end <= start:
            raise StripeError(
                400, "The phase's end_date must be after its start_date.", param=f"{at}[end_date]"
            )
        proration = raw.get("proration_behavior") or "create_prorations"
        if proration not in PRORATION_BEHAVIORS:
            raise StripeError(
                400,
                f"Invalid proration_behavior: must be one of {', '.join(PRORATION_BEHAVIORS)}",
                param=f"{at}[proration_behavior]",
            )
        phases.append(_phase(prices[0]["currency"], start, end, items, proration))
    return phases


def _timestamp(raw: dict[str, Any], name: str, now: int, at: str) -> int | None:
    value = raw.get(name)
    if value in (None, ""):
        return None
    if value == "now":
        return now
    return int_param(raw, name)


def _end(raw: dict[str, Any], start: int, price: dict[str, Any], now: int, at: str) -> int:
    end = _timestamp(raw, "end_date", now, at)
    if end is not None:
        return end
    duration = raw.get("duration")
    if isinstance(duration, dict):
        interval = duration.get("interval")
        if interval not in ("day", "week", "month", "year"):
            raise StripeError(
                400,
                "Invalid interval: must be one of day, month, week, or year",
                param=f"{at}[duration][interval]",
            )
        return add_interval(start, interval, int_param(duration, "interval_count", 1) or 1)
    # Without an end, a phase lasts one billing period of its price (Stripe's one iteration).
    recurring = price["recurring"]
    return add_interval(start, recurring["interval"], int(recurring["interval_count"] or 1))


def phase_at(schedule: dict[str, Any], at: int) -> dict[str, Any] | None:
    for phase in schedule["phases"]:
        if phase["start_date"] <= at < phase["end_date"]:
            return phase  # type: ignore[no-any-return]
    return None


def _items_of(sub: dict[str, Any]) -> list[tuple[str, int]]:
    return sorted((i["price"]["id"], i.get("quantity") or 1) for i in sub["items"]["data"])


def _items_of_phase(phase: dict[str, Any]) -> list[tuple[str, int]]:
    return sorted((i["price"], i["quantity"]) for i in phase["items"])


def phase_items(emu: Emulator, sub: dict[str, Any], phase: dict[str, Any]) -> list[dict[str, Any]]:
    """The subscription's items as `phase` has them (for a preview of the next renewal)."""
    start, end = subscriptions.period_of(sub)
    return [
        billing_objects.subscription_item(
            start, sub["id"], emu.load(item["price"], "price"), item["quantity"], start, end
        )
        for item in phase["items"]
    ]


def _move(
    emu: Emulator, sub: dict[str, Any], phase: dict[str, Any], at: int, behavior: str
) -> None:
    """Put the subscription on `phase`'s items, through the ordinary update."""
    items: list[dict[str, Any]] = [
        {"id": item["id"], "deleted": "true"} for item in sub["items"]["data"]
    ]
    items += [{"price": i["price"], "quantity": str(i["quantity"])} for i in phase["items"]]
    if at >= subscriptions.period_of(sub)[1]:
        behavior = "none"  # at the period end there is nothing left to prorate
    subscriptions.update(emu, sub, {"items": items, "proration_behavior": behavior}, at)


def next_boundary(emu: Emulator, sub: dict[str, Any]) -> int | None:
    """When the schedule managing `sub` next acts: the end of its current phase."""
    if not sub.get("schedule"):
        return None
    schedule = emu.store.get(sub["schedule"])
    if not schedule or schedule["status"] not in LIVE or not schedule["current_phase"]:
        return None
    return int(schedule["current_phase"]["end_date"])


def cross_boundary(emu: Emulator, sub: dict[str, Any], at: int) -> None:
    """The current phase ends at `at`: move to the next phase, or end the schedule."""
    schedule = emu.load(sub["schedule"], "subscription_schedule")
    following = phase_at(schedule, at)
    if following is not None:
        emu.update(
            schedule,
            lambda s: s.update(
                current_phase={
                    "start_date": following["start_date"],
                    "end_date": following["end_date"],
                }
            ),
            "subscription_schedule.updated",
        )
        if _items_of(sub) != _items_of_phase(following):
            _move(emu, sub, following, at, following["proration_behavior"])
        return
    if schedule["end_behavior"] == "cancel":
        emu.update(
            schedule,
            lambda s: s.update(status="completed", completed_at=at, current_phase=None),
            None,
        )
        emu.emit("subscription_schedule.completed", schedule)
        subscriptions.cancel(emu, emu.load(sub["id"], "subscription"), at)
        return
    release(emu, schedule, at)


def release(emu: Emulator, schedule: dict[str, Any], at: int) -> dict[str, Any]:
    _require_live(schedule, "release")
    sub_id = schedule["subscription"]
    schedule.update(
        status="released",
        released_at=at,
        released_subscription=sub_id,
        subscription=None,
        current_phase=None,
    )
    emu.save(schedule)
    emu.emit("subscription_schedule.released", schedule)
    sub = emu.load(sub_id, "subscription")
    emu.update(sub, lambda s: s.update(schedule=None), "customer.subscription.updated")
    return schedule


def cancel(emu: Emulator, schedule: dict[str, Any], at: int) -> dict[str, Any]:
    """Cancel the schedule and, as Stripe does, its subscription at once."""
    _require_live(schedule, "cancel")
    subscription_ended(emu, schedule["id"], at)
    subscriptions.cancel(emu, emu.load(schedule["subscription"], "subscription"), at)
    return emu.load(schedule["id"], "subscription_schedule")


def _require_live(schedule: dict[str, Any], verb: str) -> None:
    if schedule["status"] not in LIVE:
        raise StripeError(
            400,
            f"You cannot {verb} a subscription schedule that is currently in the "
            f"`{schedule['status']}` status. It must be in one of the following statuses: "
            "`not_started`, `active`.",
        )


def subscription_ended(emu: Emulator, schedule_id: str, at: int) -> None:
    """The subscription was canceled: so is its live schedule."""
    schedule = emu.store.get(schedule_id)
    if schedule and schedule["status"] in LIVE:
        schedule.update(status="canceled", canceled_at=at, current_phase=None)
        emu.save(schedule)
        emu.emit("subscription_schedule.canceled", schedule)
