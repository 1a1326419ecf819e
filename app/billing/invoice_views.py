"""How an invoice reads on the customer's pages (and the admin's): its status in words, its
amount with cents, and the detail page's lines and sums. Pure functions over `Invoice`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.billing.models import Invoice, payment_method_name
from app.billing.view_models import InvoiceDetail, InvoiceLineView, InvoiceRow
from app.lib.money import format_money

# Stripe's invoice statuses: (label, badge, what it means).
INVOICE_STATUS = {
    "draft": ("Draft", "", "Being prepared; not final yet."),
    "open": ("Due", "badge-warning", "Finalized and waiting to be paid."),
    "paid": ("Paid", "badge-success", ""),
    "void": ("Void", "", "Canceled: nothing is owed on it."),
    "uncollectible": (
        "Uncollectible",
        "badge-danger",
        "Payment failed and is no longer being retried; it can still be paid.",
    ),
}


def is_trial(inv: Invoice) -> bool:
    """A subscription's first invoice for nothing: its free trial."""
    return inv.billing_reason == "subscription_create" and inv.total == 0 and inv.subtotal == 0


def invoice_row(inv: Invoice) -> InvoiceRow:
    label, badge, hint = INVOICE_STATUS.get(
        inv.status, (inv.status.replace("_", " ").capitalize(), "", "")
    )
    amount = format_money(inv.total, inv.currency, cents=True)
    if inv.total < 0:
        # A credit (e.g. a downgrade's unused time): it goes to the balance, nobody paid.
        credit = format_money(-inv.total, inv.currency, cents=True)
        amount = f"{credit} credit"
        if inv.status == "paid":
            label, badge = "Credit to balance", "badge-success"
            hint = f"{credit} was added to your credit balance for your next invoices."
    elif inv.status == "paid" and is_trial(inv):
        label, badge = f"Trial — {amount}", "badge-success"
        hint = "Your free trial: nothing was charged."
    elif inv.status == "paid" and inv.amount_refunded:
        refunded = format_money(inv.amount_refunded, inv.currency, cents=True)
        if inv.amount_refunded >= inv.amount_paid:
            label, badge = "Refunded", ""
        else:
            label, badge = "Partially refunded", "badge-warning"
        hint = f"{refunded} was refunded to your payment method."
    return InvoiceRow(
        invoice=inv,
        status_label=label,
        status_badge=badge,
        description=inv.description or "Invoice",
        amount_text=amount,
        status_hint=hint,
    )


def invoice_detail(inv: Invoice) -> InvoiceDetail:
    money = _formatter(inv.currency)
    lines = [_line(line, money) for line in inv.lines or []]
    totals = [("Subtotal", money(inv.subtotal))]
    if inv.discount:
        totals.append(("Discounts", money(-inv.discount)))
    if inv.tax:
        totals.append(("Tax", money(inv.tax)))
    totals.append(("Total", money(inv.total)))
    settlement: list[tuple[str, str]] = []
    if inv.ending_balance is not None:
        change = inv.ending_balance - inv.starting_balance
        if change > 0:
            settlement.append(("Paid from your credit balance", money(-change)))
        elif change < 0:
            settlement.append(("Added to your credit balance", money(-change)))
    if inv.status != "draft":
        settlement.append(("Amount due", money(inv.amount_due)))
        settlement.append(("Amount paid", money(inv.amount_paid)))
    # An admin's refund is a credit note with a refund: both lines show (what the note
    # credited, and what went back to the card; a note may also credit the balance instead).
    if inv.amount_refunded:
        settlement.append(("Refunded to your payment method", money(-inv.amount_refunded)))
    if inv.amount_credited:
        settlement.append(("Credited by credit notes", money(-inv.amount_credited)))
    payment = None
    if inv.payment_last4:
        payment = f"{payment_method_name(inv.payment_brand)} ending in {inv.payment_last4}"
    return InvoiceDetail(
        row=invoice_row(inv),
        lines=lines,
        totals=totals,
        settlement=settlement,
        payment=payment,
    )


def _formatter(currency: str) -> Any:
    def money(amount: int) -> str:
        return format_money(amount, currency, cents=True)

    return money


def _line(line: dict[str, Any], money: Any) -> InvoiceLineView:
    label = line.get("label") or ""
    stripe_text = str(line.get("description") or "")
    proration = bool(line.get("proration"))
    amount = int(line.get("amount") or 0)
    description = label or stripe_text
    if proration and label:
        # Stripe: "Unused time on Business after 4 Dec 2026", "Remaining time on Pro ...".
        description = f"{'Unused' if amount < 0 else 'Remaining'} time on {label}"
    detail = stripe_text if description != stripe_text else ""
    return InvoiceLineView(
        description=description or "Item",
        detail=detail,
        amount_text=money(amount),
        period=_period(line.get("period_start"), line.get("period_end")),
        proration=proration,
        quantity=line.get("quantity"),
    )


def _period(start: Any, end: Any) -> str:
    if not start or not end or start == end:
        return ""
    first = datetime.fromtimestamp(int(start), tz=UTC)
    last = datetime.fromtimestamp(int(end), tz=UTC)
    return f"{first:%b %-d, %Y} – {last:%b %-d, %Y}"
