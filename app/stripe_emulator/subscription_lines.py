"""The invoice lines a subscription bills: its licensed items, trials, prorations and metered
usage."""

from __future__ import annotations

from typing import Any, cast

from app.stripe_emulator.core import Emulator


def item_amount(item: dict[str, Any]) -> int:
    return int(item["price"].get("unit_amount") or 0) * int(item.get("quantity") or 1)


def product_name(emu: Emulator, price: dict[str, Any]) -> str:
    product = emu.store.get(price["product"]) if price.get("product") else None
    return cast(str, product["name"] if product else price["id"])


def licensed_lines(
    emu: Emulator, sub: dict[str, Any], period: tuple[int, int]
) -> list[dict[str, Any]]:
    lines = []
    for item in sub["items"]["data"]:
        if item["price"]["recurring"].get("usage_type") == "metered":
            continue
        name = item["price"].get("nickname") or product_name(emu, item["price"])
        description = f"{item.get('quantity') or 1} × {name}"
        lines.append(item_line(sub, item, item_amount(item), period, description))
    return lines


def item_line(
    sub: dict[str, Any],
    item: dict[str, Any],
    amount: int,
    period: tuple[int, int],
    description: str | None = None,
    proration: bool = False,
    quantity: int | None = None,
) -> dict[str, Any]:
    qty = item.get("quantity") or 1 if quantity is None else quantity
    return {
        "amount": amount,
        "currency": sub["currency"],
        "description": description or f"{qty} × {item['price'].get('nickname') or 'plan'}",
        "period": period,
        "price_obj": item["price"],
        "quantity": qty,
        "subscription_id": sub["id"],
        "item_id": item["id"],
        "proration": proration,
    }


def trial_line(
    sub: dict[str, Any], item: dict[str, Any], period: tuple[int, int]
) -> dict[str, Any]:
    return item_line(sub, item, 0, period, description="Trial period")


def _fraction(period: tuple[int, int], start: int) -> float:
    now, end = period
    return max(0.0, (end - now) / max(1, end - start))


def unused_credit(
    sub: dict[str, Any], old_items: list[dict[str, Any]], period: tuple[int, int], start: int
) -> list[dict[str, Any]]:
    fraction = _fraction(period, start)
    return [
        item_line(
            sub,
            item,
            -round(item_amount(item) * fraction),
            period,
            description="Unused time on " + (item["price"].get("nickname") or "previous plan"),
            proration=True,
        )
        for item in old_items
        if item["price"]["recurring"].get("usage_type") != "metered"
    ]


def proration_lines(
    sub: dict[str, Any], old_items: list[dict[str, Any]], period: tuple[int, int], start: int
) -> list[dict[str, Any]]:
    old_total = sum(item_amount(i) for i in old_items if is_licensed(i))
    new_total = sum(item_amount(i) for i in sub["items"]["data"] if is_licensed(i))
    if old_total == new_total:
        return []
    fraction = _fraction(period, start)
    lines = unused_credit(sub, old_items, period, start)
    lines += [
        item_line(
            sub,
            item,
            round(item_amount(item) * fraction),
            period,
            description="Remaining time on " + (item["price"].get("nickname") or "new plan"),
            proration=True,
        )
        for item in sub["items"]["data"]
        if is_licensed(item)
    ]
    return lines


def is_licensed(item: dict[str, Any]) -> bool:
    return bool(item["price"]["recurring"].get("usage_type") != "metered")


def usage_lines(
    emu: Emulator,
    sub: dict[str, Any],
    period: tuple[int, int],
    items: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """A line per metered item for the usage its meter counted in `period`, from when the item
    got its price if that was later (usage before a mid-cycle change is not billed twice)."""
    lines = []
    for item in sub["items"]["data"] if items is None else items:
        meter_id = item["price"]["recurring"].get("meter")
        if item["price"]["recurring"].get("usage_type") != "metered" or not meter_id:
            continue
        meter = emu.store.get(meter_id)
        if meter is None:
            continue
        since = max(period[0], item.get("_usage_since") or period[0])
        quantity = round(aggregate_usage(emu, meter, sub["customer"], since, period[1]))
        amount = quantity * int(item["price"].get("unit_amount") or 0)
        lines.append(
            item_line(
                sub,
                item,
                amount,
                period,
                quantity=quantity,
                description=f"{quantity} × {meter['display_name']}",
            )
        )
    return lines


def aggregate_usage(
    emu: Emulator, meter: dict[str, Any], customer_id: str, start: int, end: int
) -> float:
    key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    formula = meter["default_aggregation"]["formula"]
    values = []
    for event in reversed(emu.store.all("billing.meter_event", customer_id)):
        if event["event_name"] != meter["event_name"] or event["payload"].get(key) != customer_id:
            continue
        if not start <= event["timestamp"] < end:
            continue
        try:
            values.append(float(event["payload"].get(value_key, 1)))
        except ValueError:
            continue
    if formula == "count":
        return float(len(values))
    if formula == "last":
        return values[-1] if values else 0.0
    return sum(values)
