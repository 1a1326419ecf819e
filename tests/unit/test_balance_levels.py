"""Bar colours, the upgrade prompt and the shown percentage at their edges (DESIGN.md's
display rules): decided on the exact counts, never on the rounded percentage."""

from __future__ import annotations

import pytest

from app.metering.balance import percentage
from app.metering.service import Balance
from app.notifications.service import _threshold


def _balance(used: int, limit: int | None = 100_000, credits_used: int = 0) -> Balance:
    return Balance(
        code="tokens",
        name="Tokens",
        unit="tokens",
        limit=limit,
        used=used,
        credits=0,
        credits_used=credits_used,
        held=0,
        available=None if limit is None else max(0, limit - used + credits_used),
        percentage=percentage(used, credits_used, limit),
        period_start=None,
        period_end=None,
        reset="billing_period",
    )


@pytest.mark.parametrize(
    ("used", "level"),
    [
        (75_000, "neutral"),
        (75_004, "warning"),  # 75.004 %: above 75, though it rounds to 75
        (90_000, "warning"),
        (90_004, "danger"),
        (100_000, "danger"),
    ],
)
def test_level_changes_just_above_75_and_90_percent(used: int, level: str) -> None:
    assert _balance(used).level == level


def test_upgrade_prompt_from_exactly_80_percent() -> None:
    assert not _balance(79_999).prompt_upgrade  # 79.999 % would round to 80
    assert _balance(80_000).prompt_upgrade


@pytest.mark.parametrize(
    ("used", "shown"),
    [(99_996, 99.9), (100_000, 100.0), (66_667, 66.6), (120_000, 100.0), (0, 0.0)],
)
def test_percentage_is_rounded_down_so_100_means_used_up(used: int, shown: float) -> None:
    assert percentage(used, 0, 100_000) == shown


def test_credits_used_do_not_count_against_the_included_quota() -> None:
    assert _balance(95_000, credits_used=10_000).level == "warning"  # 85 % of the quota


def test_nothing_included_is_used_up_from_the_start() -> None:
    balance = _balance(0, limit=0)
    assert (balance.percentage, balance.level, balance.prompt_upgrade) == (100.0, "danger", True)


def test_unlimited_has_no_level_and_no_prompt() -> None:
    balance = _balance(10**9, limit=None)
    assert (balance.percentage, balance.level, balance.prompt_upgrade) == (None, "neutral", False)


def test_usage_emails_wait_for_the_exact_threshold() -> None:
    assert _threshold(_balance(79_999)) is None
    assert _threshold(_balance(80_000)) == 80
    assert _threshold(_balance(99_996)) == 80  # 4 left: not yet "used all"
    assert _threshold(_balance(100_000)) == 100
