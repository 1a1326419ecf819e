"""Invoices: build, finalize and pay, as Stripe's invoice lifecycle does."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import (
    automatic_tax,
    balances,
    billing_objects,
    discounts,
    payments,
    tax_ids,
)
from app.stripe_emulator.core import Emulator
from app.stripe_emulator.store import new_id

RETRY_AFTER = 3 * 86400


def create(
    emu: Emulator,
    customer: dict[str, Any],
    lines: list[dict[str, Any]],
    *,
    currency: str,
    billing_reason: str,
    now: int,
    subscription: dict[str, Any] | None = None,
    period: tuple[int, int] | None = None,
    description: str | None = None,
    discount: dict[str, Any] | None = None,
    tax: bool | None = None,
) -> dict[str, Any]:
    """Create a draft invoice from line specs (kwargs of billing_objects.invoice_line minus invoice_id)."""
    invoice = build(
        customer,
        lines,
        currency=currency,
        billing_reason=billing_reason,
        now=now,
        subscription=subscription,
        period=period,
        description=description,
        discount=discount,
        tax=tax,
    )
    invoice["customer_tax_ids"] = tax_ids.invoice_tax_ids(emu, customer["id"])
    emu.save(invoice)
    emu.emit("invoice.created", invoice)
    return invoice


def build(
    customer: dict[str, Any],
    lines: list[dict[str, Any]],
    *,
    currency: str,
    billing_reason: str,
    now: int,
    subscription: dict[str, Any] | None = None,
    period: tuple[int, int] | None = None,
    description: str | None = None,
    invoice_id: str | None = None,
    discount: dict[str, Any] | None = None,
    tax: bool | None = None,
) -> dict[str, Any]:
    """The draft invoice `create` saves (and a preview shows), stored nowhere. `discount` (a
    redeemed promotion code) and `tax` (automatic tax) default to the subscription's."""
    invoice_id = invoice_id or new_id("in")
    invoice = billing_objects.invoice(
        now,
        invoice_id,
        customer,
        currency,
        billing_reason=billing_reason,
        description=description,
    )
    invoice["lines"]["data"] = [billing_objects.invoice_line(invoice_id, **line) for line in lines]
    if subscription:
        discount = discount or subscription.get("_discount")
        if tax is None:
            tax = bool((subscription.get("automatic_tax") or {}).get("enabled"))
    _set_amounts(invoice, discount, bool(tax))
    if period:
        invoice["period_start"], invoice["period_end"] = period
    if subscription:
        invoice["parent"] = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(subscription.get("metadata") or {}),
                "subscription": subscription["id"],
                "subscription_proration_date": None,
            },
        }
    invoice["starting_balance"] = int(customer.get("balance") or 0)
    return invoice


def _set_amounts(invoice: dict[str, Any], discount: dict[str, Any] | None, tax: bool) -> None:
    """Subtotal, discounts, taxes and total from the lines, as Stripe computes them: a
    discount off each line, then automatic tax on what is left of it."""
    subtotal = discounted = taxed = 0
    for line in invoice["lines"]["data"]:
        amount = line["amount"]
        off = discounts.amount_of(discount, amount) if discount else 0
        if discount and off:
            line["discounts"] = [discount["id"]]
            line["discount_amounts"] = [{"amount": off, "discount": discount["id"]}]
        if tax:
            line_tax = automatic_tax.tax_on(amount - off)
            line["taxes"] = [automatic_tax.tax_entry(line_tax, amount - off)]
            taxed += line_tax
        subtotal += amount
        discounted += off
    total_excluding_tax = subtotal - discounted
    total = total_excluding_tax + taxed
    due = max(total, 0)
    if discount:
        invoice["discounts"] = [discount["id"]]
        invoice["total_discount_amounts"] = [{"amount": discounted, "discount": discount["id"]}]
    if tax:
        invoice["automatic_tax"] = automatic_tax.invoice_field(True)
        invoice["total_taxes"] = [automatic_tax.tax_entry(taxed, total_excluding_tax)]
    invoice.update(
        subtotal=subtotal,
        subtotal_excluding_tax=subtotal,
        total=total,
        total_excluding_tax=total_excluding_tax,
        amount_due=due,
        amount_remaining=due,
    )


def finalize(emu: Emulator, invoice: dict[str, Any], now: int) -> None:
    customer = emu.load(invoice["customer"], "customer")
    # As Stripe: the customer's details are copied onto the invoice when it is finalized and
    # no longer follow the customer afterwards.
    invoice.update(
        customer_name=customer.get("name"),
        customer_email=customer.get("email"),
        customer_address=customer.get("address"),
        customer_phone=customer.get("phone"),
        customer_tax_ids=tax_ids.invoice_tax_ids(emu, customer["id"]),
    )
    sequence = int(customer.get("next_invoice_sequence") or 1)
    customer["next_invoice_sequence"] = sequence + 1
    emu.save(customer)
    base = emu.options.base_url
    invoice.update(
        status="open",
        number=f"{customer['invoice_prefix']}-{sequence:04d}",
        hosted_invoice_url=f"{base}/invoice/{invoice['id']}",
        invoice_pdf=f"{base}/invoice/{invoice['id']}/pdf",
        effective_at=now,
    )
    invoice["status_transitions"]["finalized_at"] = now
    emu.save(invoice)
    emu.emit("invoice.finalized", invoice)


def pay(emu: Emulator, invoice: dict[str, Any], pm_id: str | None, now: int) -> bool:
    """Charge an open invoice; emits invoice.paid or invoice.payment_failed."""
    if invoice["amount_remaining"] <= 0:
        _mark_paid(emu, invoice, now, None)
        return True
    pi, decline = payments.charge(
        emu,
        customer_id=invoice["customer"],
        pm_id=pm_id,
        amount=invoice["amount_remaining"],
        currency=invoice["currency"],
        now=now,
        description=_payment_description(invoice),
    )
    invoice["attempt_count"] += 1
    invoice["attempted"] = True
    if decline is None:
        _mark_paid(emu, invoice, now, pi)
        return True
    invoice["next_payment_attempt"] = now + RETRY_AFTER
    invoice["payments"]["data"].append(_invoice_payment(invoice, pi, "open", now))
    emu.save(invoice)
    emu.emit("invoice.payment_failed", invoice)
    if pi["status"] == "requires_action":
        # The card asks for 3-D Secure: the customer completes it on the hosted invoice page.
        emu.emit("invoice.payment_action_required", invoice)
    return False


def record_payment(emu: Emulator, invoice: dict[str, Any], pi: dict[str, Any], now: int) -> None:
    """Mark an invoice paid by a payment made elsewhere (a Checkout payment)."""
    invoice["attempt_count"] += 1
    _mark_paid(emu, invoice, now, pi)


def _mark_paid(emu: Emulator, invoice: dict[str, Any], now: int, pi: dict[str, Any] | None) -> None:
    invoice.update(
        status="paid",
        amount_paid=invoice["amount_due"],
        amount_remaining=0,
        next_payment_attempt=None,
        attempted=True,
        auto_advance=False,
    )
    if pi is not None:
        invoice["default_payment_method"] = pi["payment_method"]
        invoice["payments"]["data"].append(_invoice_payment(invoice, pi, "paid", now))
    invoice["status_transitions"]["paid_at"] = now
    emu.save(invoice)
    emu.emit("invoice.paid", invoice)
    emu.emit("invoice.payment_succeeded", invoice)


def _invoice_payment(
    invoice: dict[str, Any], pi: dict[str, Any], status: str, now: int
) -> dict[str, Any]:
    return {
        "id": new_id("inpay"),
        "object": "invoice_payment",
        "amount_paid": pi["amount_received"] or None,
        "amount_requested": pi["amount"],
        "created": now,
        "currency": pi["currency"],
        "invoice": invoice["id"],
        "is_default": True,
        "livemode": False,
        "payment": {"type": "payment_intent", "payment_intent": pi["id"]},
        "status": status,
        "status_transitions": {"canceled_at": None, "paid_at": now if status == "paid" else None},
    }


def _payment_description(invoice: dict[str, Any]) -> str:
    if invoice["billing_reason"].startswith("subscription"):
        return "Subscription " + (
            "creation" if invoice["billing_reason"] == "subscription_create" else "update"
        )
    return "Invoice"


def payment_intent_of(invoice: dict[str, Any]) -> str | None:
    payments_made = invoice["payments"]["data"]
    return payments_made[-1]["payment"]["payment_intent"] if payments_made else None


def issue(
    emu: Emulator,
    customer: dict[str, Any],
    lines: list[dict[str, Any]],
    *,
    currency: str,
    billing_reason: str,
    now: int,
    pm_id: str | None,
    subscription: dict[str, Any] | None = None,
    period: tuple[int, int] | None = None,
    attempt_payment: bool = True,
) -> tuple[dict[str, Any], bool]:
    """Create, finalize and (optionally) pay an invoice; returns it and whether it is paid."""
    invoice = create(
        emu,
        customer,
        lines,
        currency=currency,
        billing_reason=billing_reason,
        now=now,
        subscription=subscription,
        period=period,
    )
    balances.apply_to_invoice(emu, invoice, now)
    finalize(emu, invoice, now)
    if not attempt_payment and invoice["amount_remaining"] > 0:
        return invoice, False
    return invoice, pay(emu, invoice, pm_id, now)
