"""Paused subscriptions: a trial that ends without a payment method, when the subscription
was created with `trial_settings[end_behavior][missing_payment_method]=pause`, pauses the
subscription instead of invoicing (`status: paused`, `customer.subscription.paused`; `cancel`
cancels it instead). `POST /v1/subscriptions/{id}/resume` resumes it
(`customer.subscription.resumed`): with `billing_cycle_anchor[type]=now` (the default) a new
period starts now and its invoice is charged: `active`, or `past_due` when the payment fails
(`payment_behavior=resume_on_payment_attempt`, the default) or still `paused`
(`resume_on_payment_success`). `unchanged` keeps the period and bills at its end."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import invoices, payments
from app.stripe_emulator.clock import add_interval
from app.stripe_emulator.core import Emulator
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, route
from app.stripe_emulator.subscription_lines import licensed_lines


def trial_settings_param(params: dict[str, Any]) -> dict[str, Any] | None:
    """The subscription's `trial_settings` from a create request's, if given."""
    raw = params.get("trial_settings")
    if not isinstance(raw, dict):
        return None
    behavior = (raw.get("end_behavior") or {}).get("missing_payment_method") or "create_invoice"
    return {"end_behavior": {"missing_payment_method": behavior}}


def trial_end_without_payment_method(emu: Emulator, sub: dict[str, Any]) -> str | None:
    """What a trial ending now does instead of invoicing: "pause", "cancel" or None."""
    if sub["status"] != "trialing":
        return None
    behavior = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
    if behavior not in ("pause", "cancel"):
        return None
    customer = emu.load(sub["customer"], "customer")
    if payments.default_payment_method(emu, customer, sub):
        return None
    return str(behavior)


def pause(emu: Emulator, sub: dict[str, Any]) -> None:
    emu.update(sub, lambda s: s.update(status="paused"), "customer.subscription.updated")
    emu.emit("customer.subscription.paused", sub)


@route("POST", "/v1/subscriptions/{id}/resume")
def resume(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    sub = emu.load(req["id"], "subscription")
    if sub["status"] != "paused":
        raise StripeError(
            400,
            f"Only a paused subscription can be resumed; this one is {sub['status']}.",
        )
    anchor = (req.params.get("billing_cycle_anchor") or {}).get("type") or "now"
    on_success = req.params.get("payment_behavior") == "resume_on_payment_success"
    now = emu.now_for(sub)
    if anchor == "unchanged":
        emu.update(sub, lambda s: s.update(status="active"), "customer.subscription.updated")
        emu.emit("customer.subscription.resumed", sub)
        return sub
    price = sub["items"]["data"][0]["price"]["recurring"]
    end = add_interval(now, price["interval"], int(price["interval_count"] or 1))

    def restart(s: dict[str, Any]) -> None:
        s["billing_cycle_anchor"] = now
        for item in s["items"]["data"]:
            item["current_period_start"], item["current_period_end"] = now, end

    emu.update(sub, restart, None)
    customer = emu.load(sub["customer"], "customer")
    invoice, paid = invoices.issue(
        emu,
        customer,
        licensed_lines(emu, sub, (now, end)),
        currency=sub["currency"],
        billing_reason="subscription_update",
        now=now,
        pm_id=payments.default_payment_method(emu, customer, sub),
        subscription=sub,
        period=(now, now),
    )
    if not paid and on_success:
        # `resume_on_payment_success`: it stays paused until its resumption invoice is paid.
        emu.update(sub, lambda s: s.update(latest_invoice=invoice["id"]), None)
        return sub
    status = "active" if paid else "past_due"
    emu.update(
        sub,
        lambda s: s.update(status=status, latest_invoice=invoice["id"]),
        "customer.subscription.updated",
    )
    emu.emit("customer.subscription.resumed", sub)
    return sub
