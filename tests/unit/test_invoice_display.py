"""How invoices read: a description from their lines, Stripe's statuses in words, amounts with
cents (app/billing/invoice_lines.py, app/billing/invoice_views.py)."""

from __future__ import annotations

from typing import Any

import pytest

from app.billing.invoice_lines import PRORATION, describe, line_label, mirror_lines
from app.billing.invoice_views import invoice_detail, invoice_row
from app.billing.models import Invoice
from app.catalog.models import Catalog


def line(price: str | None, amount: int, text: str = "", *, proration: bool = False) -> Any:
    return {
        "amount": amount,
        "description": text,
        "period": {"start": 1_764_806_400, "end": 1_767_484_800},
        "quantity": 1,
        "pricing": {"price_details": {"price": price}},
        "parent": {"subscription_item_details": {"proration": proration}},
    }


KEYS = {
    "price_pro_m": "plan_pro_monthly",
    "price_biz_y": "plan_business_yearly",
    "price_pack": "pack_ai_100",
    "price_over": "overage_business_api_calls_monthly",
}


def describe_lines(catalog: Catalog, *lines: Any, trial: bool = False) -> str:
    return describe(mirror_lines(catalog, list(lines), KEYS), trial=trial)


def test_labels_from_lookup_keys(catalog: Catalog) -> None:
    assert line_label(catalog, "plan_pro_monthly") == "Pro · monthly"
    assert line_label(catalog, "plan_business_yearly") == "Business · yearly"
    assert line_label(catalog, "pack_ai_100") == "100 AI requests credit pack"
    assert line_label(catalog, "overage_business_api_calls_monthly") == "API calls beyond Business"
    assert line_label(catalog, "somebody_elses_price") is None
    assert line_label(catalog, None) is None


def test_descriptions(catalog: Catalog) -> None:
    assert describe_lines(catalog, line("price_pro_m", 2900, "1 × Pro")) == "Pro · monthly"
    assert describe_lines(catalog, line("price_pack", 1000)) == "100 AI requests credit pack"
    assert (
        describe_lines(catalog, line("price_pro_m", 0, "Trial period"), trial=True)
        == "Pro · monthly (trial)"
    )
    downgrade = (
        line("price_biz_y", -14900, "Unused time on Business", proration=True),
        line("price_pro_m", 2900, "Remaining time on Pro", proration=True),
    )
    assert describe_lines(catalog, *downgrade) == PRORATION
    # A renewal with usage: the plan is the main line, whatever the order.
    assert (
        describe_lines(
            catalog, line("price_over", 130, "13 × API calls"), line("price_biz_y", 149000)
        )
        == "Business · yearly and 1 more"
    )
    # A price we do not know keeps Stripe's words; no lines at all: the fallback.
    assert describe_lines(catalog, line("price_other", 500, "Setup fee")) == "Setup fee"
    assert describe([], fallback="Consulting") == "Consulting"


def invoice(**values: Any) -> Invoice:
    row: dict[str, Any] = {
        "stripe_invoice_id": "in_1",
        "status": "paid",
        "currency": "usd",
        "total": 2900,
        "subtotal": 2900,
        "tax": 0,
        "discount": 0,
        "amount_due": 2900,
        "amount_paid": 2900,
        "amount_refunded": 0,
        "amount_credited": 0,
        "starting_balance": 0,
        "ending_balance": 0,
        "billing_reason": "subscription_cycle",
        "description": "Pro · monthly",
        "lines": [],
    }
    row.update(values)
    return Invoice(**row)


@pytest.mark.parametrize(
    ("status", "label"),
    [
        ("draft", "Draft"),
        ("open", "Due"),
        ("paid", "Paid"),
        ("void", "Void"),
        ("uncollectible", "Uncollectible"),
    ],
)
def test_stripe_statuses_have_labels(status: str, label: str) -> None:
    row = invoice_row(invoice(status=status))
    assert row.status_label == label
    assert row.amount_text == "$29.00"


def test_a_zero_trial_invoice_is_not_paid() -> None:
    row = invoice_row(
        invoice(
            billing_reason="subscription_create", total=0, subtotal=0, amount_due=0, amount_paid=0
        )
    )
    assert row.status_label == "Trial — $0.00"
    assert row.amount_text == "$0.00"


def test_a_negative_invoice_is_a_credit() -> None:
    row = invoice_row(
        invoice(
            billing_reason="subscription_update",
            total=-12000,
            subtotal=-12000,
            amount_due=0,
            amount_paid=0,
            ending_balance=-12000,
        )
    )
    assert row.amount_text == "$120.00 credit"
    assert row.status_label == "Credit to balance"
    assert "-$" not in row.amount_text and row.status_label != "Paid"


def test_the_payment_names_the_payment_method() -> None:
    def paid_with(brand: str | None) -> str | None:
        return invoice_detail(invoice(payment_brand=brand, payment_last4="3000")).payment

    assert paid_with("visa") == "Visa ending in 3000"
    assert paid_with("sepa_debit") == "SEPA Direct Debit ending in 3000"
    assert paid_with("us_bank_account") == "US bank account ending in 3000"
    assert paid_with(None) == "Card ending in 3000"


def test_refunds_show_on_the_invoice() -> None:
    assert invoice_row(invoice(amount_refunded=2900)).status_label == "Refunded"
    assert invoice_row(invoice(amount_refunded=900)).status_label == "Partially refunded"


def test_detail_sums_and_payment() -> None:
    detail = invoice_detail(
        invoice(
            total=2500,
            subtotal=2900,
            discount=500,
            tax=100,
            starting_balance=-1000,
            ending_balance=0,
            amount_due=1500,
            amount_paid=1500,
            amount_refunded=500,
            payment_brand="visa",
            payment_last4="4242",
            lines=[
                {
                    "description": "1 × Pro",
                    "label": "Pro · monthly",
                    "amount": 2900,
                    "quantity": 1,
                    "period_start": 1_764_806_400,
                    "period_end": 1_767_484_800,
                    "proration": False,
                }
            ],
        )
    )
    assert detail.totals == [
        ("Subtotal", "$29.00"),
        ("Discounts", "-$5.00"),
        ("Tax", "$1.00"),
        ("Total", "$25.00"),
    ]
    assert detail.settlement == [
        ("Paid from your credit balance", "-$10.00"),
        ("Amount due", "$15.00"),
        ("Amount paid", "$15.00"),
        ("Refunded to your payment method", "-$5.00"),
    ]
    assert detail.payment == "Visa ending in 4242"
    (only,) = detail.lines
    assert (only.description, only.detail, only.amount_text) == (
        "Pro · monthly",
        "1 × Pro",
        "$29.00",
    )
    assert only.period == "Dec 4, 2025 – Jan 4, 2026"
