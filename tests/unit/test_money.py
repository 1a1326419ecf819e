"""Money helpers: integer minor units, rounded half up where a division needs rounding."""

from __future__ import annotations

import pytest

from app.lib.money import ZERO_DECIMAL_CURRENCIES, format_money, per_month


@pytest.mark.parametrize(
    ("yearly", "monthly"),
    [
        (29000, 2417),  # $290 a year: 2416.67 → $24.17, not the truncated $24.16
        (149000, 12417),  # $1,490 a year: 12416.67 → $124.17
        (12000, 1000),  # exact
        (18, 2),  # 1.5 → 2: a half rounds up
        (17, 1),  # 1.417 → 1
        (5, 0),  # 0.417 → 0
        (6, 1),  # 0.5 → 1
        (0, 0),
    ],
)
def test_per_month_rounds_half_up_to_the_minor_unit(yearly: int, monthly: int) -> None:
    assert per_month(yearly) == monthly


def test_per_month_of_the_catalog_prices_as_shown() -> None:
    assert format_money(per_month(29000), "usd") == "$24.17"
    assert format_money(per_month(149000), "usd") == "$124.17"


# https://docs.stripe.com/currencies#zero-decimal
STRIPE_ZERO_DECIMAL = [
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
]


def test_zero_decimal_currencies_are_stripes_complete_list() -> None:
    assert set(STRIPE_ZERO_DECIMAL) == ZERO_DECIMAL_CURRENCIES


@pytest.mark.parametrize("currency", STRIPE_ZERO_DECIMAL)
def test_a_zero_decimal_amount_is_whole_units(currency: str) -> None:
    assert format_money(1500, currency) == f"1,500 {currency.upper()}"


def test_a_two_decimal_amount_is_hundredths() -> None:
    assert format_money(150050, "chf") == "1,500.50 CHF"
    assert format_money(-1500, "usd") == "-$15"


def test_invoice_amounts_keep_their_cents() -> None:
    assert format_money(2900, "usd", cents=True) == "$29.00"
    assert format_money(-12000, "usd", cents=True) == "-$120.00"
    assert format_money(2417, "eur", cents=True) == "€24.17"
    assert format_money(500, "jpy", cents=True) == "500 JPY"  # zero-decimal: no cents
    assert format_money(2900, "usd") == "$29"  # prices elsewhere stay short
