"""The emulator's hosted pages render from its own templates, escaped, with the shared
zero-decimal currency list."""

from __future__ import annotations

import pytest

from app.lib.money import ZERO_DECIMAL_CURRENCIES
from app.stripe_emulator.pages import index_page, not_found_page
from app.stripe_emulator.rendering import STYLESHEET, STYLESHEET_PATH, interval, money


@pytest.mark.parametrize("currency", sorted(ZERO_DECIMAL_CURRENCIES))
def test_zero_decimal_amounts_show_whole_units(currency: str) -> None:
    assert money(1500, currency) == f"1,500 {currency.upper()}"


def test_two_decimal_amounts_show_hundredths() -> None:
    assert money(150050, "usd") == "1,500.50 USD"
    assert money(-1500, "eur") == "-15.00 EUR"
    assert money(None, None) == "0.00 USD"


def test_interval_of_a_price() -> None:
    assert interval({"recurring": None}) == ""
    assert interval({"recurring": {"interval": "month", "interval_count": 1}}) == " / month"
    assert interval({"recurring": {"interval": "month", "interval_count": 3}}) == " / 3 months"


def test_a_page_links_its_stylesheet_and_holds_no_inline_style() -> None:
    page = index_page()
    assert f'<link rel="stylesheet" href="{STYLESHEET_PATH}">' in page
    assert "<style" not in page and " style=" not in page and "<script" not in page
    assert "font-family" in STYLESHEET


def test_the_not_found_page_escapes_the_message() -> None:
    page = not_found_page("No such checkout.session: '<script>x</script>'")
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
