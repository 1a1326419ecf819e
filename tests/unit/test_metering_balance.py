"""The balance rules without a database: periods, consumption order, availability."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.catalog.models import Quota
from app.metering.balance import (
    EPOCH,
    BillingCycle,
    CreditLot,
    MeterState,
    consumption_order,
    current_period,
    percentage,
    usage_day_start,
)

NOW = datetime(2026, 1, 31, 15, 30, tzinfo=UTC)


def test_daily_quota_resets_at_utc_midnight():
    period = current_period(Quota("m", 20, "day"), NOW, None)
    assert period.start == datetime(2026, 1, 31, tzinfo=UTC)
    assert period.end == datetime(2026, 2, 1, tzinfo=UTC)


def test_free_plan_billing_period_is_the_calendar_month():
    period = current_period(Quota("m", 20, "billing_period"), NOW, None)
    assert period.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert period.end == datetime(2026, 2, 1, tzinfo=UTC)


def test_never_is_one_period():
    period = current_period(Quota("m", 5, "never"), NOW, None)
    assert period.start == EPOCH and period.end is None


def test_paid_plan_follows_the_subscription_cycle_and_rolls_forward():
    cycle = BillingCycle(
        start=datetime(2025, 12, 15, tzinfo=UTC),
        end=datetime(2026, 1, 15, tzinfo=UTC),
        interval="month",
    )
    period = current_period(Quota("m", 1000, "billing_period"), NOW, cycle)
    # Stripe has not told us about the renewal yet: the next period is used, not the stale one.
    assert period.start == datetime(2026, 1, 15, tzinfo=UTC)
    assert period.end == datetime(2026, 2, 15, tzinfo=UTC)
    inside = current_period(
        Quota("m", 1000, "billing_period"), datetime(2026, 1, 1, tzinfo=UTC), cycle
    )
    assert inside.start == cycle.start and inside.end == cycle.end


def test_a_trial_period_is_the_period():
    cycle = BillingCycle(
        start=datetime(2026, 1, 20, tzinfo=UTC),
        end=datetime(2026, 2, 3, tzinfo=UTC),
        interval="month",
    )
    period = current_period(Quota("m", 1000, "billing_period"), NOW, cycle)
    assert (period.start, period.end) == (cycle.start, cycle.end)


def test_a_yearly_subscription_resets_its_quota_every_month_on_the_billing_day():
    cycle = BillingCycle(
        start=datetime(2025, 3, 31, tzinfo=UTC),
        end=datetime(2026, 3, 31, tzinfo=UTC),
        interval="year",
    )
    period = current_period(Quota("m", 1000, "billing_period"), NOW, cycle)
    assert period.start == datetime(2026, 1, 31, tzinfo=UTC)
    assert period.end == datetime(2026, 2, 28, tzinfo=UTC)  # clamped to the month's last day
    before = current_period(
        Quota("m", 1000, "billing_period"), datetime(2026, 1, 30, tzinfo=UTC), cycle
    )
    assert before.start == datetime(2025, 12, 31, tzinfo=UTC)
    assert before.end == datetime(2026, 1, 31, tzinfo=UTC)


def test_credits_are_consumed_oldest_expiry_first_then_non_expiring():
    lots = [
        CreditLot(1, 5, None),
        CreditLot(2, 5, datetime(2026, 6, 1, tzinfo=UTC)),
        CreditLot(3, 5, datetime(2026, 3, 1, tzinfo=UTC)),
    ]
    assert [lot.grant_id for lot in consumption_order(lots)] == [3, 2, 1]


def test_quota_is_used_before_credits():
    state = MeterState(limit=10, used=8, credits_used=0, lots=[CreditLot(1, 5, None)], held=0)
    assert state.available() == 7
    assert state.consume(4) == [(1, 2)]
    assert (state.used, state.credits_used, state.credits) == (12, 2, 3)
    assert state.available() == 3


def test_holds_reduce_what_is_available():
    state = MeterState(limit=10, used=0, credits_used=0, lots=[], held=7)
    assert state.available() == 3
    assert not state.can_use(4)
    assert state.can_use(10, exclude_hold=7)


def test_unlimited_is_always_available():
    state = MeterState(limit=None, used=10**9, credits_used=0, lots=[], held=0)
    assert state.available() is None and state.can_use(10**12)


@pytest.mark.parametrize(
    ("used", "credits_used", "limit", "expected"),
    [
        (0, 0, 100, 0.0),
        (75, 0, 100, 75.0),
        (150, 60, 100, 90.0),
        (5, 0, None, None),
        (0, 0, 0, 100.0),
        (1, 0, 3, 33.3),
    ],
)
def test_percentage(used, credits_used, limit, expected):
    assert percentage(used, credits_used, limit) == expected


@given(
    limit=st.integers(0, 50),
    lots=st.lists(st.integers(0, 20), max_size=4),
    amounts=st.lists(st.integers(0, 15), max_size=30),
)
def test_consuming_only_what_is_available_never_overdraws(limit, lots, amounts):
    state = MeterState(
        limit=limit,
        used=0,
        credits_used=0,
        lots=[CreditLot(i, n, None) for i, n in enumerate(lots)],
        held=0,
    )
    supply = limit + sum(lots)
    for amount in amounts:
        if state.can_use(amount):
            state.consume(amount)
    assert state.used <= supply
    assert state.used - state.credits_used <= limit
    assert state.credits == sum(lots) - state.credits_used


def test_usage_day_buckets_are_utc_days_split_where_a_billing_period_starts():
    midnight = datetime(2026, 1, 31, tzinfo=UTC)
    starts = datetime(2026, 1, 31, 9, 15, tzinfo=UTC)
    cycle = BillingCycle(
        start=starts, end=datetime(2026, 2, 28, 9, 15, tzinfo=UTC), interval="month"
    )
    assert usage_day_start(NOW, None) == midnight
    assert usage_day_start(NOW, cycle) == starts
    assert usage_day_start(starts, cycle) == starts
    assert usage_day_start(starts - timedelta(microseconds=1), cycle) == midnight
    assert usage_day_start(NOW + timedelta(days=1), cycle) == midnight + timedelta(days=1)
    # A time given in another zone falls in its UTC day.
    eastern = NOW.astimezone(timezone(timedelta(hours=-5))).replace(hour=20)  # 01:30 UTC, Feb 1
    assert usage_day_start(eastern, None) == midnight + timedelta(days=1)
