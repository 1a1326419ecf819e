"""Stripe Tax (`automatic_tax[enabled]`), with one fixed test rate.

The emulator does not know tax law: wherever the customer is, automatic tax charges
`TEST_RATE_PERCENT` (10 %) exclusive of the price on every line after its discount, and says
`automatic_tax.status: complete`. The rate's id is `TEST_TAX_RATE`.
"""

from __future__ import annotations

from typing import Any

from app.stripe_emulator.errors import missing

TEST_RATE_PERCENT = 10
TEST_TAX_RATE = "txr_emulator_test_10_percent"


def enabled_param(params: dict[str, Any], name: str = "automatic_tax") -> bool | None:
    """`automatic_tax[enabled]` of a request (None when not given)."""
    raw = params.get("automatic_tax")
    if raw in (None, ""):
        return None
    if not isinstance(raw, dict) or raw.get("enabled") not in ("true", "false", True, False):
        raise missing(f"{name}[enabled]")
    return raw["enabled"] in ("true", True)


def tax_on(taxable: int) -> int:
    return round(taxable * TEST_RATE_PERCENT / 100)


def tax_entry(amount: int, taxable: int) -> dict[str, Any]:
    """One entry of a line's `taxes` or an invoice's `total_taxes`."""
    return {
        "amount": amount,
        "tax_behavior": "exclusive",
        "tax_rate_details": {"tax_rate": TEST_TAX_RATE},
        "taxability_reason": "standard_rated",
        "taxable_amount": taxable,
        "type": "tax_rate_details",
    }


def invoice_field(enabled: bool) -> dict[str, Any]:
    """An invoice's `automatic_tax`."""
    return {
        "disabled_reason": None,
        "enabled": enabled,
        "liability": {"type": "self"} if enabled else None,
        "provider": "stripe" if enabled else None,
        "status": "complete" if enabled else None,
    }


def subscription_field(enabled: bool) -> dict[str, Any]:
    """A subscription's `automatic_tax`."""
    return {
        "disabled_reason": None,
        "enabled": enabled,
        "liability": {"type": "self"} if enabled else None,
    }
