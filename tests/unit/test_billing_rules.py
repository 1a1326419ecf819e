"""The pure rules behind the billing pages (and the Stripe engineer's card removal)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.billing.rules import (
    bar_width,
    can_remove_card,
    change_ends_trial,
    clamp_page,
    display_percentage,
    page_count,
    plan_is_paid,
    trial_days_left,
    waits_for_period_end,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cards", "paid", "allowed"),
    [(1, True, False), (2, True, True), (1, False, True), (0, False, True), (3, False, True)],
)
def test_can_remove_card(cards: int, paid: bool, allowed: bool) -> None:
    assert can_remove_card(cards, paid) is allowed


@pytest.mark.parametrize(
    ("free", "status", "paid"),
    [
        (False, "active", True),
        (False, "trialing", True),
        (False, "past_due", True),
        (False, "canceled", False),
        (False, "incomplete_expired", False),
        (True, "active", False),
    ],
)
def test_plan_is_paid(free: bool, status: str, paid: bool) -> None:
    assert plan_is_paid(free, status) is paid


def test_trial_days_left_rounds_up_and_never_goes_negative() -> None:
    assert trial_days_left(None, NOW) is None
    assert trial_days_left(NOW + timedelta(days=14), NOW) == 14
    assert trial_days_left(NOW + timedelta(days=2, hours=-1), NOW) == 2
    assert trial_days_left(NOW + timedelta(hours=2), NOW) == 1
    assert trial_days_left(NOW - timedelta(days=1), NOW) == 0


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (0.0, "0"), (80.0, "80"), (33.333, "33.3"), (99.96, "100"), (12.05, "12.1")],
)
def test_display_percentage_has_at_most_one_decimal(value: float | None, text: str) -> None:
    assert display_percentage(value) == text


@pytest.mark.parametrize(
    ("value", "width"), [(None, 0.0), (-3.0, 0.0), (42.44, 42.4), (100.0, 100.0), (250.0, 100.0)]
)
def test_bar_width_is_capped(value: float | None, width: float) -> None:
    assert bar_width(value) == width


def test_pages() -> None:
    assert page_count(0, 20) == 1 and page_count(20, 20) == 1 and page_count(21, 20) == 2
    assert clamp_page(None, 3) == 1
    assert clamp_page("2", 3) == 2
    assert clamp_page("abc", 3) == 1
    assert clamp_page("-4", 3) == 1
    assert clamp_page("99", 3) == 3


@pytest.mark.parametrize(
    ("status", "same_plan", "trial_days", "ends"),
    [
        ("trialing", False, None, True),  # Pro trial -> Business (no trial): pay now
        ("trialing", False, 0, True),
        ("trialing", True, None, False),  # another interval of the same plan keeps it
        ("trialing", False, 14, False),  # a plan with its own trial keeps it
        ("active", False, None, False),
    ],
)
def test_a_trial_ends_only_when_moving_to_a_plan_without_one(
    status: str, same_plan: bool, trial_days: int | None, ends: bool
) -> None:
    assert change_ends_trial(status, same_plan, trial_days) is ends


@pytest.mark.parametrize(
    ("status", "same_plan", "now", "then", "now_interval", "then_interval", "waits"),
    [
        ("active", False, 14_900, 2_900, "month", "month", True),  # Business → Pro
        ("active", False, 2_900, 14_900, "month", "month", False),  # Pro → Business
        ("active", True, 2_417, 2_900, "year", "month", True),  # Pro yearly → monthly
        ("active", True, 2_900, 2_417, "month", "year", False),  # Pro monthly → yearly
        ("active", False, 12_417, 2_900, "year", "month", True),  # Business yearly → Pro
        ("active", False, 2_417, 14_900, "year", "month", False),  # Pro yearly → Business
        ("trialing", False, 14_900, 2_900, "month", "month", False),  # nothing paid yet
        ("past_due", False, 14_900, 2_900, "month", "month", True),
    ],
)
def test_waits_for_period_end(
    status: str,
    same_plan: bool,
    now: int,
    then: int,
    now_interval: str,
    then_interval: str,
    waits: bool,
) -> None:
    assert waits_for_period_end(status, same_plan, now, then, now_interval, then_interval) is waits
