"""Invoice previews (`POST /v1/invoices/create_preview`): the invoice an update of a subscription
would bill, computed by the same code the update runs (on a copy that is never saved)."""

from __future__ import annotations

import copy
from typing import Any

from app.stripe_emulator import (
    automatic_tax,
    balances,
    billing_objects,
    invoices,
    schedules,
    subscriptions,
)
from app.stripe_emulator.core import Emulator, int_param
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.store import new_id
from app.stripe_emulator.subscription_lines import licensed_lines

# subscription_details[...] that mean the same as on `POST /v1/subscriptions/{id}`.
UPDATE_PARAMS = (
    "items",
    "proration_behavior",
    "proration_date",
    "billing_cycle_anchor",
    "cancel_at_period_end",
    "trial_end",
    "metadata",
    "default_tax_rates",
)


def create_preview(emu: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    details = params.get("subscription_details") or {}
    if not isinstance(details, dict):
        raise StripeError(400, "Invalid hash", param="subscription_details")
    sub = _subscription(emu, params)
    if sub is None:
        return _new_subscription(emu, params, details)
    customer = emu.load(sub["customer"], "customer")
    now = emu.now_for(sub)
    draft = copy.deepcopy(sub)
    _apply_tax(draft, params)
    if params.get("schedule"):
        _apply_schedule(emu, draft, params["schedule"])
    changes = {name: details[name] for name in UPDATE_PARAMS if name in details}
    pending = subscriptions.apply_changes(emu, draft, changes, now)
    if pending is not None:
        lines, reason = pending
        at, period = now, (now, now)
    else:
        if draft["cancel_at_period_end"] or draft["status"] not in subscriptions.ACTIVE_STATUSES:
            raise _none(customer["id"])
        lines, reason = subscriptions.renewal_lines(emu, draft), "subscription_cycle"
        at = subscriptions.period_of(draft)[1]
        period = subscriptions.period_of(draft)
    invoice = _preview(customer, lines, draft, reason, at, period)
    if "proration_date" in details:
        subscription_details = invoice["parent"]["subscription_details"]
        subscription_details["subscription_proration_date"] = int_param(details, "proration_date")
    return invoice


def _subscription(emu: Emulator, params: dict[str, Any]) -> dict[str, Any] | None:
    if params.get("schedule"):
        schedule = emu.load(params["schedule"], "subscription_schedule", "schedule")
        if not schedule.get("subscription"):
            raise _none(schedule["customer"])
        return emu.load(schedule["subscription"], "subscription", "schedule")
    if params.get("subscription"):
        sub = emu.load(params["subscription"], "subscription", "subscription")
        if params.get("customer") and params["customer"] != sub["customer"]:
            raise StripeError(
                400,
                f"The subscription {sub['id']} does not belong to customer {params['customer']}.",
                param="customer",
            )
        return sub
    customer_id = params.get("customer")
    if not customer_id:
        raise StripeError(
            400,
            "You must specify one of customer, customer_account, subscription or schedule.",
            code="parameter_missing",
        )
    emu.load(customer_id, "customer", "customer")
    if ((params.get("subscription_details") or {}).get("items")) is not None:
        return None  # a new subscription
    live = [
        s
        for s in emu.store.all("subscription", customer_id)
        if s["status"] in subscriptions.ACTIVE_STATUSES
    ]
    if not live:
        raise _none(customer_id)
    return live[-1]


def _new_subscription(
    emu: Emulator, params: dict[str, Any], details: dict[str, Any]
) -> dict[str, Any]:
    """The first invoice of a subscription `customer` would start with these items now."""
    customer = emu.load(params["customer"], "customer", "customer")
    now = emu.now_for(customer)
    raw_items = details.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise StripeError(400, "Invalid array", param="subscription_details[items]")
    sub = billing_objects.subscription(now, new_id("sub"), customer["id"])
    for index, raw in enumerate(raw_items):
        param = f"subscription_details[items][{index}][price]"
        price = subscriptions.recurring_price(emu, raw.get("price"), param)
        quantity = int_param(raw, "quantity", 1) or 1
        sub["items"]["data"].append(
            billing_objects.subscription_item(now, sub["id"], price, quantity, now, now)
        )
    sub["currency"] = sub["items"]["data"][0]["price"]["currency"]
    _apply_tax(sub, params)
    lines = licensed_lines(emu, sub, (now, subscriptions.next_period_end(sub)))
    invoice = _preview(customer, lines, sub, "subscription_create", now, (now, now))
    invoice["parent"] = None
    for line in invoice["lines"]["data"]:
        line["parent"]["subscription_item_details"]["subscription"] = None
    return invoice


def _apply_tax(draft: dict[str, Any], params: dict[str, Any]) -> None:
    """`automatic_tax[enabled]` of the preview: the invoice with (or without) Stripe Tax."""
    enabled = automatic_tax.enabled_param(params)
    if enabled is not None:
        draft["automatic_tax"] = automatic_tax.subscription_field(enabled)


def _apply_schedule(emu: Emulator, draft: dict[str, Any], schedule_id: str) -> None:
    """A schedule's preview bills the phase that will be running when the period renews."""
    schedule = emu.load(schedule_id, "subscription_schedule", "schedule")
    end = subscriptions.period_of(draft)[1]
    phase = schedules.phase_at(schedule, end)
    if phase is not None:
        draft["items"]["data"] = schedules.phase_items(emu, draft, phase)


def _preview(
    customer: dict[str, Any],
    lines: list[dict[str, Any]],
    sub: dict[str, Any],
    reason: str,
    at: int,
    period: tuple[int, int],
) -> dict[str, Any]:
    invoice = invoices.build(
        customer,
        lines,
        currency=sub["currency"],
        billing_reason=reason,
        now=at,
        subscription=sub,
        period=period,
        invoice_id=new_id("upcoming_in"),
    )
    for line in invoice["lines"]["data"]:
        line["id"] = new_id("il_tmp")
        line["invoice"] = invoice["id"]
    balances.show_on(invoice, int(customer.get("balance") or 0))
    invoice.update(
        next_payment_attempt=at if invoice["amount_due"] > 0 else None,
        lines={**invoice["lines"], "url": "/v1/invoices/upcoming/lines"},
        payments={**invoice["payments"], "url": "/v1/invoice_payments"},
    )
    return invoice


def _none(customer_id: str) -> StripeError:
    return StripeError(
        404,
        f"No upcoming invoices for customer: {customer_id}",
        code="invoice_upcoming_none",
    )
