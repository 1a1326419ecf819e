"""Subscriptions: creation, updates with prorations, cancellation and period renewal."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from app.stripe_emulator import (
    billing_objects,
    invoices,
    pausing,
    payment_actions,
    payments,
)
from app.stripe_emulator.automatic_tax import enabled_param as tax_param
from app.stripe_emulator.automatic_tax import subscription_field as tax_field
from app.stripe_emulator.clock import DAY, add_interval
from app.stripe_emulator.core import Emulator, bool_param, int_param, metadata_update, render
from app.stripe_emulator.errors import StripeError, missing
from app.stripe_emulator.store import new_id
from app.stripe_emulator.subscription_lines import (
    is_licensed,
    licensed_lines,
    proration_lines,
    trial_line,
    unused_credit,
    usage_lines,
)

ACTIVE_STATUSES = {"active", "trialing", "past_due", "unpaid", "incomplete", "paused"}
INCOMPLETE_EXPIRES_AFTER = 23 * 3600
TRIAL_WILL_END_BEFORE = 3 * DAY


@dataclass
class ItemSpec:
    price: dict[str, Any]
    quantity: int = 1
    metadata: dict[str, str] = field(default_factory=dict)


def recurring_price(emu: Emulator, price_id: Any, param: str) -> dict[str, Any]:
    price = emu.load(price_id, "price", param)
    if price["type"] != "recurring":
        raise StripeError(
            400,
            f"The price specified is set to `type=one_time` but this field only accepts prices "
            f"with `type=recurring`: {price_id}",
            param=param,
        )
    if not price["active"]:
        raise StripeError(400, f"The price specified is inactive: {price_id}", param=param)
    return price


def period_of(sub: dict[str, Any]) -> tuple[int, int]:
    first = sub["items"]["data"][0]
    return first["current_period_start"], first["current_period_end"]


def _interval(price: dict[str, Any]) -> tuple[str, int]:
    return price["recurring"]["interval"], int(price["recurring"]["interval_count"] or 1)


def _check_intervals(specs: list[dict[str, Any]]) -> None:
    if len({_interval(p) for p in specs}) > 1:
        raise StripeError(
            400,
            "Currency and interval fields must match across all plans on this subscription.",
            param="items",
        )


def create(
    emu: Emulator,
    customer: dict[str, Any],
    items: list[ItemSpec],
    *,
    now: int,
    trial_days: int | None = None,
    trial_end: int | None = None,
    default_pm: str | None = None,
    metadata: dict[str, str] | None = None,
    cancel_at_period_end: bool = False,
    payment_behavior: str = "allow_incomplete",
    description: str | None = None,
    billing_mode: str = "flexible",
    trial_settings: dict[str, Any] | None = None,
    discount: dict[str, Any] | None = None,
    automatic_tax: bool = False,
) -> dict[str, Any]:
    """A new subscription and its first invoice. `discount`: a promotion code redeemed in
    Checkout (every invoice of the subscription is discounted); `automatic_tax`: Stripe Tax
    on its invoices."""
    if not items:
        raise missing("items")
    _check_intervals([spec.price for spec in items])
    sub_id = new_id("sub")
    if trial_days:
        trial_end = now + trial_days * DAY
    interval, count = _interval(items[0].price)
    end = trial_end if trial_end and trial_end > now else add_interval(now, interval, count)
    sub = billing_objects.subscription(
        now,
        sub_id,
        customer["id"],
        currency=items[0].price["currency"],
        default_payment_method=default_pm,
        metadata=metadata or {},
        description=description,
        test_clock=customer.get("test_clock"),
        billing_cycle_anchor=end if trial_end else now,
        billing_mode={
            "flexible": {"proration_discounts": "itemized"} if billing_mode == "flexible" else None,
            "type": billing_mode,
            "updated_at": now,
        },
    )
    if trial_settings:
        sub["trial_settings"] = trial_settings
    if discount:
        sub["_discount"] = {**discount, "subscription": sub_id}
        sub["discounts"] = [discount["id"]]
    sub["automatic_tax"] = tax_field(automatic_tax)
    sub["items"]["data"] = [
        billing_objects.subscription_item(now, sub_id, spec.price, spec.quantity, now, end)
        for spec in items
    ]
    for item, spec in zip(sub["items"]["data"], items, strict=True):
        item["metadata"] = spec.metadata
    trialing = bool(trial_end and trial_end > now)
    if trialing:
        sub.update(status="trialing", trial_start=now, trial_end=end)
    if cancel_at_period_end:
        sub.update(cancel_at_period_end=True, cancel_at=end, canceled_at=now)
    emu.save(sub)
    emu.emit("customer.subscription.created", sub)

    pm_id = payments.default_payment_method(emu, customer, sub)
    lines = [] if trialing else licensed_lines(emu, sub, (now, end))
    if trialing:
        lines = [trial_line(sub, item, (now, end)) for item in sub["items"]["data"]]
    invoice, paid = invoices.issue(
        emu,
        emu.load(customer["id"], "customer"),
        lines,
        currency=sub["currency"],
        billing_reason="subscription_create",
        now=now,
        pm_id=pm_id,
        subscription=sub,
        period=(now, now),
        attempt_payment=payment_behavior != "default_incomplete",
    )
    if not paid and payment_behavior == "error_if_incomplete":
        raise _card_error(emu, invoice)
    sub["latest_invoice"] = invoice["id"]
    emu.save(sub)
    if paid and not trialing:
        emu.update(sub, lambda s: s.update(status="active"), "customer.subscription.updated")
    return sub


def _card_error(emu: Emulator, invoice: dict[str, Any]) -> StripeError:
    """The 402 Stripe answers when `payment_behavior=error_if_incomplete` cannot be paid."""
    pi = emu.store.get(invoices.payment_intent_of(invoice) or "")
    if pi and pi["status"] == "requires_action":
        return StripeError(
            402,
            "Payment for this subscription requires additional user action before it can be "
            "completed successfully.",
            type="card_error",
            code="subscription_payment_intent_requires_action",
        )
    error = (pi or {}).get("last_payment_error") or {}
    return StripeError(
        402,
        error.get("message", "Your card was declined."),
        type="card_error",
        code=error.get("code", "card_declined"),
        decline_code=error.get("decline_code"),
    )


PAYMENT_BEHAVIORS = frozenset(
    {"allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"}
)


# What a pending update takes (Stripe's "Pending updates reference"; `metadata` since
# 2026-05-27.dahlia); anything else with `pending_if_incomplete` is refused.
PENDING_UPDATE_PARAMS = frozenset(
    {
        "expand",
        "payment_behavior",
        "proration_behavior",
        "proration_date",
        "billing_cycle_anchor",
        "items",
        "trial_end",
        "trial_from_plan",
        "add_invoice_items",
        "metadata",
    }
)

BILLING_MODES = ("classic", "flexible")


def billing_mode_param(params: dict[str, Any], name: str = "billing_mode") -> str:
    """`billing_mode[type]` (`name` is where it sits in the request, for errors); flexible when
    not given, the default of the API version the SDK sends."""
    raw = params.get("billing_mode") or {}
    if not isinstance(raw, dict):
        raise StripeError(400, "Invalid hash", param=name)
    mode = raw.get("type") or "flexible"
    if mode not in BILLING_MODES:
        raise StripeError(
            400,
            f"Invalid {name}[type]: must be one of classic or flexible",
            param=f"{name}[type]",
        )
    return str(mode)


def update(emu: Emulator, sub: dict[str, Any], params: dict[str, Any], now: int) -> dict[str, Any]:
    before = copy.deepcopy(sub)
    payment_behavior = params.get("payment_behavior") or "allow_incomplete"
    if payment_behavior not in PAYMENT_BEHAVIORS:
        raise StripeError(
            400, f"Invalid payment_behavior: {payment_behavior}", param="payment_behavior"
        )
    if payment_behavior == "pending_if_incomplete":
        unsupported = sorted(set(params) - PENDING_UPDATE_PARAMS)
        if unsupported:
            raise StripeError(
                400,
                "When payment_behavior is pending_if_incomplete, only the parameters supported "
                f"by pending updates can be passed; received: {', '.join(unsupported)}.",
                param=unsupported[0],
            )
    pending_invoice = apply_changes(emu, sub, params, now)
    ends_trial = params.get("trial_end") == "now" and before["status"] == "trialing"
    if ends_trial and payment_behavior == "pending_if_incomplete":
        return _end_trial_once_paid(emu, before, sub, now)
    if pending_invoice is not None and payment_behavior == "pending_if_incomplete":
        return _update_once_paid(emu, before, sub, pending_invoice, now)
    emu.save(sub)
    previous = _previous(before, sub)
    if previous:
        emu.emit("customer.subscription.updated", sub, previous)
    if pending_invoice is not None:
        invoice, paid = _collect(emu, sub, pending_invoice, now)
        if not paid and payment_behavior == "error_if_incomplete":
            # Stripe refuses the whole update: the request's transaction rolls back, so the
            # subscription, the invoice and their events are as if it was never made.
            raise _card_error(emu, invoice)
    if params.get("trial_end") == "now":
        process_subscription(emu, sub["id"], now)
        renewed = emu.load(sub["id"], "subscription")
        if payment_behavior == "error_if_incomplete" and renewed["status"] == "past_due":
            # The first paid period's invoice is part of this update: unpaid, Stripe refuses
            # the update as a whole.
            raise _card_error(emu, emu.load(renewed["latest_invoice"], "invoice"))
        return renewed
    return emu.load(sub["id"], "subscription")


def apply_changes(
    emu: Emulator, sub: dict[str, Any], params: dict[str, Any], now: int
) -> tuple[list[dict[str, Any]], str] | None:
    """Apply an update's parameters to `sub` (in memory: nothing saved or emitted); return the
    lines to invoice at once, if any. An invoice preview runs this on a copy."""
    if sub["status"] in {"canceled", "incomplete_expired"}:
        allowed = {"metadata", "cancellation_details", "expand"}
        if set(params) - allowed:
            raise StripeError(
                400,
                "A canceled subscription can only update its cancellation_details and metadata.",
            )
    sub["metadata"] = metadata_update(sub["metadata"], params)
    tax = tax_param(params)
    if tax is not None:
        sub["automatic_tax"] = tax_field(tax)
    if "description" in params:
        sub["description"] = params["description"] or None
    customer = emu.load(sub["customer"], "customer")
    if "default_payment_method" in params:
        pm_id = params["default_payment_method"] or None
        if pm_id:
            pm_id = payments.owned_by(emu, pm_id, customer["id"], now, "default_payment_method")[
                "id"
            ]
        sub["default_payment_method"] = pm_id
    cancel = bool_param(params, "cancel_at_period_end")
    if cancel is not None:
        end = period_of(sub)[1]
        sub.update(
            cancel_at_period_end=cancel,
            cancel_at=end if cancel else None,
            canceled_at=now if cancel else None,
        )
        sub["cancellation_details"]["reason"] = "cancellation_requested" if cancel else None
    pending_invoice = None
    if params.get("items") or anchor_now(params):
        pending_invoice = _change_items(emu, sub, params, now)
    if params.get("trial_end") == "now" and sub["status"] == "trialing":
        sub["trial_end"] = now
        for item in sub["items"]["data"]:
            item["current_period_end"] = now
    return pending_invoice


def anchor_now(params: dict[str, Any]) -> bool:
    """`billing_cycle_anchor` `now` (a string, or `{type: now}` as the current API sends it)."""
    raw = params.get("billing_cycle_anchor")
    value = raw.get("type") if isinstance(raw, dict) else raw
    if value not in (None, "", "now", "unchanged"):
        raise StripeError(
            400,
            "Invalid billing_cycle_anchor: must be one of now or unchanged",
            param="billing_cycle_anchor",
        )
    return value == "now"


def _previous(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    from app.stripe_emulator.core import previous_attributes

    previous = previous_attributes(before, after)
    if "items" in previous:
        previous["items"] = render(before["items"])
    return previous


def _change_items(
    emu: Emulator, sub: dict[str, Any], params: dict[str, Any], now: int
) -> tuple[list[dict[str, Any]], str] | None:
    """Apply `items[]` changes; return proration lines to invoice now, if any."""
    behavior = params.get("proration_behavior") or "create_prorations"
    if behavior not in {"create_prorations", "none", "always_invoice"}:
        raise StripeError(
            400, f"Invalid proration_behavior: {behavior}", param="proration_behavior"
        )
    raw_items = params.get("items") or []
    if not isinstance(raw_items, list):
        raise StripeError(400, "Invalid array", param="items")
    start, end = period_of(sub)
    # Prorations as of `proration_date` when given (to match a preview), else now.
    prorate_at = int_param(params, "proration_date", now) or now
    old_items = copy.deepcopy(sub["items"]["data"])
    by_id = {item["id"]: item for item in sub["items"]["data"]}
    # Metered prices leaving the subscription now (item deleted or given another price).
    ended: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            raise StripeError(400, "Invalid hash", param=f"items[{index}]")
        item = by_id.get(raw.get("id") or "")
        if raw.get("id") and item is None:
            raise StripeError(
                400,
                f"Invalid subscription_item id: {raw['id']}",
                param=f"items[{index}][id]",
            )
        if item is not None and bool_param(raw, "deleted"):
            sub["items"]["data"].remove(item)
            if not is_licensed(item):
                ended.append(copy.deepcopy(item))
            continue
        if item is None:
            price = recurring_price(emu, raw.get("price"), f"items[{index}][price]")
            item = billing_objects.subscription_item(now, sub["id"], price, 1, start, end)
            item["_usage_since"] = now
            sub["items"]["data"].append(item)
        elif raw.get("price"):
            price = recurring_price(emu, raw["price"], f"items[{index}][price]")
            if not is_licensed(item) and price["id"] != item["price"]["id"]:
                ended.append(copy.deepcopy(item))
                item["_usage_since"] = now
            item["price"], item["plan"] = price, billing_objects.plan_from_price(price)
        quantity = int_param(raw, "quantity")
        if quantity is not None:
            item["quantity"] = quantity
        item["metadata"] = metadata_update(item["metadata"], raw)
    if not sub["items"]["data"]:
        raise StripeError(400, "A subscription must have at least one item.", param="items")
    _check_intervals([item["price"] for item in sub["items"]["data"]])
    if sub["status"] == "trialing":
        return None
    old_interval = _interval(old_items[0]["price"])
    new_interval = _interval(sub["items"]["data"][0]["price"])
    # Flexible billing mode bills the usage reported so far for a metered price that leaves
    # mid-cycle (and, when the cycle restarts, for every metered price); classic mode drops it
    # (Stripe, "Manage your usage-based billing setup").
    usage = []
    if behavior != "none" and sub["billing_mode"]["type"] == "flexible":
        if old_interval != new_interval:
            ended = [item for item in old_items if not is_licensed(item)]
        usage = [
            line
            for line in usage_lines(emu, sub, (start, now), ended)
            if line["quantity"]  # no invoice item for a meter that counted nothing
        ]
    if old_interval != new_interval or anchor_now(params):
        # Changing the billing interval (or `billing_cycle_anchor=now`) restarts the cycle now
        # and bills right away (as Stripe).
        new_end = add_interval(now, *new_interval)
        for item in sub["items"]["data"]:
            item["current_period_start"], item["current_period_end"] = now, new_end
        sub["billing_cycle_anchor"] = now
        lines = licensed_lines(emu, sub, (now, new_end))
        if behavior != "none":
            lines += unused_credit(sub, old_items, (prorate_at, end), start)
        return lines + usage, "subscription_update"
    if behavior == "none":
        return None
    lines = proration_lines(sub, old_items, (prorate_at, end), start) + usage
    if not lines:
        return None
    if behavior == "always_invoice":
        return lines, "subscription_update"
    sub.setdefault("_pending_lines", []).extend(lines)
    return None


def _update_once_paid(
    emu: Emulator,
    before: dict[str, Any],
    sub: dict[str, Any],
    pending: tuple[list[dict[str, Any]], str],
    now: int,
) -> dict[str, Any]:
    """`payment_behavior=pending_if_incomplete`: the update applies if its invoice is paid now;
    otherwise it waits as the subscription's `pending_update` (payment_actions.py)."""
    lines, reason = pending
    invoice, paid = _charge_now(emu, sub, lines, reason, now, (now, now))
    if not paid:
        return payment_actions.hold(emu, before, sub, invoice, now)
    sub["latest_invoice"] = invoice["id"]
    emu.save(sub)
    emu.emit("customer.subscription.updated", sub, _previous(before, sub))
    return emu.load(sub["id"], "subscription")


def _end_trial_once_paid(
    emu: Emulator, before: dict[str, Any], sub: dict[str, Any], now: int
) -> dict[str, Any]:
    """`trial_end=now` with `pending_if_incomplete`: the first paid period starts now and is
    invoiced at once; unpaid, the subscription stays in its trial with the update pending."""
    new_end = add_interval(now, *_interval(sub["items"]["data"][0]["price"]))
    for item in sub["items"]["data"]:
        item["current_period_start"], item["current_period_end"] = now, new_end
    sub["billing_cycle_anchor"] = now
    lines = licensed_lines(emu, sub, (now, new_end))
    invoice, paid = _charge_now(emu, sub, lines, "subscription_update", now, (now, new_end))
    if not paid:
        return payment_actions.hold(emu, before, sub, invoice, now, trial_end=now)
    sub.update(status="active", trial_end=now, latest_invoice=invoice["id"])
    emu.save(sub)
    emu.emit("customer.subscription.updated", sub, _previous(before, sub))
    return emu.load(sub["id"], "subscription")


def _charge_now(
    emu: Emulator,
    sub: dict[str, Any],
    lines: list[dict[str, Any]],
    reason: str,
    now: int,
    period: tuple[int, int],
) -> tuple[dict[str, Any], bool]:
    """An update's invoice, charged at once to the subscription's default payment method."""
    customer = emu.load(sub["customer"], "customer")
    return invoices.issue(
        emu,
        customer,
        lines,
        currency=sub["currency"],
        billing_reason=reason,
        now=now,
        pm_id=payments.default_payment_method(emu, customer, sub),
        subscription=sub,
        period=period,
    )


def _collect(
    emu: Emulator, sub: dict[str, Any], pending: tuple[list[dict[str, Any]], str], now: int
) -> tuple[dict[str, Any], bool]:
    lines, reason = pending
    invoice, paid = _charge_now(emu, sub, lines, reason, now, (now, now))
    status = "active" if paid else "past_due"
    emu.update(
        sub,
        lambda s: s.update(latest_invoice=invoice["id"], status=status),
        "customer.subscription.updated",
    )
    return invoice, paid


def cancel(emu: Emulator, sub: dict[str, Any], now: int) -> dict[str, Any]:
    if sub["status"] == "canceled":
        return sub
    sub.update(status="canceled", canceled_at=sub.get("canceled_at") or now, ended_at=now)
    sub["cancellation_details"]["reason"] = (
        sub["cancellation_details"].get("reason") or "cancellation_requested"
    )
    emu.save(sub)
    emu.emit("customer.subscription.deleted", sub)
    if sub.get("schedule"):
        from app.stripe_emulator import schedules

        schedules.subscription_ended(emu, sub["schedule"], now)
    return sub


# Time passing


def process_due(emu: Emulator, clock_id: str | None, now: int) -> None:
    for sub in emu.store.all("subscription"):
        if sub.get("test_clock") == clock_id and sub["status"] in ACTIVE_STATUSES:
            process_subscription(emu, sub["id"], now)


def process_subscription(emu: Emulator, sub_id: str, now: int) -> None:
    from app.stripe_emulator import schedules  # schedules build on this module

    sub = emu.load(sub_id, "subscription")
    if sub["status"] == "incomplete":
        if now >= sub["created"] + INCOMPLETE_EXPIRES_AFTER:
            emu.update(
                sub,
                lambda s: s.update(status="incomplete_expired", ended_at=now),
                "customer.subscription.updated",
            )
        return
    for _ in range(1000):
        sub = emu.load(sub_id, "subscription")
        if sub["status"] not in ACTIVE_STATUSES or sub["status"] == "paused":
            return
        _maybe_trial_will_end(emu, sub, now)
        payment_actions.expire(emu, sub, now)
        end = period_of(sub)[1]
        boundary = schedules.next_boundary(emu, sub)
        if boundary is not None and boundary <= min(end, now):
            # A schedule's phase ends first (or with the period: the renewal bills the next
            # phase's items).
            schedules.cross_boundary(emu, sub, boundary)
            continue
        if end > now:
            return
        _renew(emu, sub, end)


def _maybe_trial_will_end(emu: Emulator, sub: dict[str, Any], now: int) -> None:
    if sub["status"] != "trialing" or sub.get("_trial_will_end_sent") or not sub["trial_end"]:
        return
    if now >= sub["trial_end"] - TRIAL_WILL_END_BEFORE:
        sub["_trial_will_end_sent"] = True
        emu.save(sub)
        emu.emit("customer.subscription.trial_will_end", sub)


def _renew(emu: Emulator, sub: dict[str, Any], at: int) -> None:
    instead = pausing.trial_end_without_payment_method(emu, sub)
    if instead == "pause":
        pausing.pause(emu, sub)
        return
    if sub["cancel_at_period_end"] or instead == "cancel":
        cancel(emu, sub, at)
        return
    start, end = period_of(sub)
    new_end = next_period_end(sub)
    lines = renewal_lines(emu, sub)
    sub.pop("_pending_lines", None)

    def advance(s: dict[str, Any]) -> None:
        for item in s["items"]["data"]:
            item["current_period_start"], item["current_period_end"] = end, new_end

    emu.update(sub, advance, "customer.subscription.updated")
    customer = emu.load(sub["customer"], "customer")
    invoice, paid = invoices.issue(
        emu,
        customer,
        lines,
        currency=sub["currency"],
        billing_reason="subscription_cycle",
        now=at,
        pm_id=payments.default_payment_method(emu, customer, sub),
        subscription=sub,
        period=(start, end),
    )
    status = "active" if paid else "past_due"
    emu.update(
        sub,
        lambda s: s.update(latest_invoice=invoice["id"], status=status),
        "customer.subscription.updated",
    )


def next_period_end(sub: dict[str, Any]) -> int:
    return add_interval(period_of(sub)[1], *_interval(sub["items"]["data"][0]["price"]))


def renewal_lines(emu: Emulator, sub: dict[str, Any]) -> list[dict[str, Any]]:
    """What the invoice at the end of the current period bills: pending prorations, the next
    period of the licensed items and the period's metered usage."""
    start, end = period_of(sub)
    pending = list(sub.get("_pending_lines") or [])
    next_period = (end, next_period_end(sub))
    return pending + licensed_lines(emu, sub, next_period) + usage_lines(emu, sub, (start, end))
