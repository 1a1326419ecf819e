"""Money helpers: integer minor units, rounded half up where a division needs rounding."""

from __future__ import annotations

import pytest

from app.lib.money import format_money, per_month


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
