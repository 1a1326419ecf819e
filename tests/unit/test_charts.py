"""The bar-chart geometry shared by the customer's usage chart and the admin's charts."""

from __future__ import annotations

from datetime import UTC, date, datetime

from app.lib.charts import (
    MIN_BAR,
    bar_chart,
    bar_height,
    day_label,
    day_range,
    last_days,
    month_label,
    place_bars,
)


def test_the_tallest_bar_fills_the_chart_but_the_headroom() -> None:
    assert bar_height(50, 50, 48) == 44
    assert bar_height(25, 50, 48) == 22
    assert bar_height(1, 3, 48) == 14.67  # rounded to 2 decimals


def test_zero_is_no_bar_and_a_tiny_value_still_shows() -> None:
    assert bar_height(0, 50, 48) == 0
    assert bar_height(0, 0, 48) == 0
    assert bar_height(1, 10_000, 120) == MIN_BAR


def test_bars_are_centred_in_their_slots() -> None:
    assert place_bars([0, 4, 2], slot=10, bar_width=8, height=48) == [
        (1, 0),
        (11, 44),
        (21, 22),
    ]
    assert [x for x, _ in place_bars([1, 1], slot=24, bar_width=20, height=120)] == [2, 26]
    assert place_bars([], slot=10, bar_width=8, height=48) == []


def test_a_labelled_chart() -> None:
    chart = bar_chart("usage-x", "X", [("Jan 1", 10, "10"), ("Jan 2", 0, "0")], "10 in total")
    assert chart.width == 48
    assert chart.bar_width == 20
    assert [(b.label, b.x, b.height) for b in chart.bars] == [("Jan 1", 2, 116), ("Jan 2", 26, 0)]
    assert bar_chart("empty", "E", [], "").width == 24  # one slot even without points


def test_day_buckets_and_labels() -> None:
    assert day_range(date(2026, 2, 27), date(2026, 3, 2)) == [
        date(2026, 2, 27),
        date(2026, 2, 28),
        date(2026, 3, 1),
        date(2026, 3, 2),
    ]
    assert day_range(date(2026, 3, 2), date(2026, 3, 2)) == [date(2026, 3, 2)]
    days = last_days(datetime(2026, 12, 30, tzinfo=UTC), 3)
    assert days == [date(2026, 12, 30), date(2026, 12, 31), date(2027, 1, 1)]
    assert day_label(date(2026, 3, 5)) == "Mar 5"
    assert month_label(date(2026, 3, 1)) == "Mar 2026"
