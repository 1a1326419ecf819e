"""What follows a payment that waited for the customer: authentication completed or failed on
the hosted invoice page, and a subscription's pending update (`payment_behavior=
pending_if_incomplete`) applied once its invoice is paid or discarded when it expires."""

from __future__ import annotations

import copy
from typing import Any

from app.stripe_emulator import authentication, invoices
from app.stripe_emulator.core import Emulator, previous_attributes, render

PENDING_UPDATE_EXPIRES_AFTER = 23 * 3600


def awaiting(emu: Emulator, invoice: dict[str, Any]) -> dict[str, Any] | None:
    """The payment intent of an open invoice that waits for authentication, if any."""
    if invoice["status"] != "open":
        return None
    pi = emu.store.get(invoices.payment_intent_of(invoice) or "")
    return pi if pi and pi["status"] == "requires_action" else None


def complete(emu: Emulator, invoice: dict[str, Any], now: int) -> None:
    """The customer authenticated: the payment succeeds, the invoice is paid, and the
    subscription's pending update (if this invoice carries one) applies."""
    pi = awaiting(emu, invoice)
    if pi is None:
        return
    pi.update(status="succeeded", amount_received=pi["amount"], next_action=None)
    emu.save(pi)
    emu.emit("payment_intent.succeeded", pi)
    pm = emu.store.get(pi["payment_method"] or "")
    if pm:
        with authentication.confirmed():
            authentication.required(emu, pm)
    invoices.record_payment(emu, invoice, pi, now)
    invoice_paid(emu, invoice)


def fail(emu: Emulator, invoice: dict[str, Any]) -> None:
    """The customer failed authentication: the invoice stays open, its payment failed."""
    pi = awaiting(emu, invoice)
    if pi is None:
        return
    pm = emu.store.get(pi["payment_method"] or "") or {}
    pi.update(
        status="requires_payment_method",
        next_action=None,
        last_payment_error={
            "code": "payment_intent_authentication_failure",
            "decline_code": None,
            "message": authentication.FAILED_MESSAGE,
            "payment_method": render(pm) or None,
            "type": "card_error",
        },
    )
    emu.save(pi)
    emu.emit("payment_intent.payment_failed", pi)
    emu.emit("invoice.payment_failed", invoice)


def invoice_paid(emu: Emulator, invoice: dict[str, Any]) -> None:
    """A subscription invoice was paid: its pending update applies, its subscription is
    active again."""
    sub_id = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    sub = emu.store.get(sub_id) if sub_id else None
    if sub is None or sub.get("latest_invoice") != invoice["id"]:
        return
    before = copy.deepcopy(sub)
    draft = sub.pop("_pending_draft", None)
    if sub.get("pending_update") and draft:
        sub["items"]["data"] = draft["items"]
        sub["billing_cycle_anchor"] = draft["billing_cycle_anchor"]
        sub["pending_update"] = None
        if draft.get("trial_end") is not None and sub["status"] == "trialing":
            sub["trial_end"] = draft["trial_end"]  # the trial ended with the update
            sub["status"] = "active"
    if sub["status"] in {"past_due", "incomplete", "unpaid"}:
        sub["status"] = "active"
    emu.save(sub)
    previous = previous_attributes(before, sub)
    if previous:
        if "items" in previous:
            previous["items"] = render(before["items"])
        emu.emit("customer.subscription.updated", sub, previous)


def hold(
    emu: Emulator,
    before: dict[str, Any],
    draft: dict[str, Any],
    invoice: dict[str, Any],
    now: int,
    *,
    trial_end: int | None = None,
) -> dict[str, Any]:
    """The update's invoice is not paid: the subscription stays as it was, with the update
    pending (Stripe's `pending_update`) and the invoice as its latest; `trial_end` is the
    trial's end the update makes (`trial_end=now`)."""
    sub = copy.deepcopy(before)
    sub["pending_update"] = {
        "billing_cycle_anchor": (
            draft["billing_cycle_anchor"]
            if draft["billing_cycle_anchor"] != before["billing_cycle_anchor"]
            else None
        ),
        "discounts": None,
        "expires_at": now + PENDING_UPDATE_EXPIRES_AFTER,
        "subscription_items": render(draft["items"]["data"]),
        "trial_end": trial_end,
        "trial_from_plan": None,
    }
    sub["_pending_draft"] = {
        "items": draft["items"]["data"],
        "billing_cycle_anchor": draft["billing_cycle_anchor"],
        "trial_end": trial_end,
    }
    sub["latest_invoice"] = invoice["id"]
    emu.save(sub)
    emu.emit("customer.subscription.updated", sub, previous_attributes(before, sub))
    return sub


def expire(emu: Emulator, sub: dict[str, Any], now: int) -> None:
    """Discard a pending update past its `expires_at`; its unpaid invoice is voided."""
    pending = sub.get("pending_update")
    if not pending or now < pending["expires_at"]:
        return
    invoice = emu.store.get(sub.get("latest_invoice") or "")
    if invoice and invoice["status"] == "open":
        invoice["status"] = "void"
        invoice["status_transitions"]["voided_at"] = now
        invoice["amount_remaining"] = 0
        emu.save(invoice)
        emu.emit("invoice.voided", invoice)

    def discard(s: dict[str, Any]) -> None:
        s["pending_update"] = None
        s.pop("_pending_draft", None)

    emu.update(sub, discard, "customer.subscription.updated")
