"""Amounts typed by an admin (a refund) as minor units (app/lib/money.py parse_money)."""

from __future__ import annotations

import pytest

from app.lib.money import parse_money


def test_major_units_to_minor_units() -> None:
    assert parse_money("12.50", "usd") == 1250
    assert parse_money("12.5", "usd") == 1250
    assert parse_money("12", "usd") == 1200
    assert parse_money(" $1,000.01 ", "usd") == 100001
    assert parse_money(".05", "eur") == 5
    assert parse_money("500", "jpy") == 500  # zero-decimal: whole yen


@pytest.mark.parametrize(
    ("text", "currency"),
    [("", "usd"), ("-1", "usd"), ("1.234", "usd"), ("abc", "usd"), ("1e3", "usd"), ("5.5", "jpy")],
)
def test_not_an_amount(text: str, currency: str) -> None:
    with pytest.raises(ValueError):
        parse_money(text, currency)
