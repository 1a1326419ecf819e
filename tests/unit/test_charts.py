"""The charts' view model (issue 21, item 1): round y ticks, x labels that fit, the period a
meter's chart spans, the empty state and the labels' wording (app/lib/charts.py,
app/billing/usage_chart.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from app.billing.usage_chart import chart_span, meter_chart, span_text
from app.catalog.models import Meter, Quota
from app.lib.charts import (
    Point,
    bar_chart,
    compact_money,
    compact_number,
    day_label,
    day_points,
    day_range,
    full_day_label,
    last_days,
    month_label,
    month_points,
    nice_step,
    peak_point,
    x_ticks,
    y_ticks,
)

DEC = day_range(date(2026, 12, 1), date(2026, 12, 31))
AI = Meter(code="ai_requests", name="AI requests", unit="request", aggregation="count")


@pytest.mark.parametrize(
    ("peak", "ticks"),
    [
        (0, [0]),
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (7, [0, 2, 4, 6, 8]),
        (17, [0, 5, 10, 15, 20]),
        (20, [0, 5, 10, 15, 20]),
        (21, [0, 10, 20, 30]),
        (95, [0, 25, 50, 75, 100]),
        (17_800, [0, 5_000, 10_000, 15_000, 20_000]),
        (1_234_567, [0, 500_000, 1_000_000, 1_500_000]),
    ],
)
def test_y_ticks_are_few_and_round_and_reach_the_peak(peak: int, ticks: list[int]) -> None:
    assert y_ticks(peak) == ticks
    assert len(ticks) <= 5 and ticks[-1] >= peak


def test_steps_are_one_two_two_and_a_half_or_five_times_a_power_of_ten() -> None:
    assert [nice_step(p) for p in (4, 9, 10, 30, 90, 400, 1000)] == [1, 5, 5, 10, 25, 100, 250]


def test_axis_labels_are_short() -> None:
    assert [compact_number(v) for v in (0, 5, 950, 1_000, 1_500, 20_000, 2_500_000)] == [
        "0",
        "5",
        "950",
        "1k",
        "1.5k",
        "20k",
        "2.5M",
    ]
    assert compact_number(0.25) == "0.25"
    assert compact_money(5_000, "usd") == "$50"
    assert compact_money(250, "usd") == "$2.50"
    assert compact_money(250_000, "usd") == "$2.5k"
    assert compact_money(20_000, "jpy") == "20k JPY"


def test_day_and_month_labels() -> None:
    assert day_label(date(2026, 3, 5)) == "Mar 5"
    assert full_day_label(date(2026, 3, 5)) == "Mar 5, 2026"
    assert month_label(date(2026, 3, 1)) == "Mar 2026"
    months = [date(2025, 12, 1), date(2026, 1, 1)]
    points = month_points(months, {date(2026, 1, 1): 1250}, lambda v: f"${v / 100:.2f}")
    # The axis' month names its year, short; the tooltip and the table say it in full.
    assert [p.short for p in points] == ["Dec '25", "Jan '26"]
    assert [p.label for p in points] == ["Dec 2025", "Jan 2026"]
    assert points[1].text == "$12.50" and points[0].value == 0


def test_day_buckets() -> None:
    assert day_range(date(2026, 2, 27), date(2026, 3, 2))[-2:] == [
        date(2026, 3, 1),
        date(2026, 3, 2),
    ]
    days = last_days(datetime(2026, 12, 30, tzinfo=UTC), 3)
    assert days == [date(2026, 12, 30), date(2026, 12, 31), date(2027, 1, 1)]


def test_x_labels_fit_a_wide_and_a_narrow_chart() -> None:
    ticks = x_ticks(day_points(DEC, {}))
    texts = ["Dec 1", "Dec 6", "Dec 11", "Dec 16", "Dec 21", "Dec 26", "Dec 31"]
    assert [t.text for t in ticks] == texts
    # Every other label on a narrow chart, the first and the last among them.
    assert [t.text for t in ticks if t.narrow] == ["Dec 1", "Dec 11", "Dec 21", "Dec 31"]
    # The edge labels are anchored inside the chart, the others centred on their bar.
    assert (ticks[0].anchor, ticks[0].pos) == ("start", 0)
    assert (ticks[-1].anchor, ticks[-1].pos) == ("end", 100)
    assert ticks[1].anchor == "middle" and ticks[1].pos == pytest.approx(5.5 * 100 / 31, abs=0.01)
    # Counted back from the last day (today, or the range's end): it always has its label.
    month = x_ticks(day_points(DEC[:30], {}))
    assert [t.text for t in month] == ["Dec 5", "Dec 10", "Dec 15", "Dec 20", "Dec 25", "Dec 30"]
    assert [t.text for t in month if t.narrow] == ["Dec 10", "Dec 20", "Dec 30"]
    near_edge = x_ticks(day_points(DEC[:27], {}))  # its first label on the 3rd bar
    assert (near_edge[0].text, near_edge[0].anchor) == ("Dec 3", "start")
    week = x_ticks(day_points(DEC[:7], {}))
    assert len(week) == 7 and [t.text for t in week if t.narrow] == [
        "Dec 1",
        "Dec 3",
        "Dec 5",
        "Dec 7",
    ]
    assert len(x_ticks(day_points(day_range(date(2026, 1, 1), date(2026, 12, 31)), {}))) <= 7
    assert len(x_ticks([Point("a", "a", 1)])) == 1
    assert x_ticks([]) == []


def test_bars_in_percent_of_the_plot() -> None:
    points = [Point("Dec 1, 2026", "Dec 1", 20, "20"), Point("Dec 2, 2026", "Dec 2", 5, "5")]
    points.append(Point("Dec 3, 2026", "Dec 3", 0, "0"))
    points.append(Point("Dec 4, 2026", "Dec 4", None))  # still to come
    chart = bar_chart("x", "X", points)
    assert [t.text for t in chart.y_ticks] == ["0", "5", "10", "15", "20"]
    assert [t.pos for t in chart.y_ticks] == [100, 75, 50, 25, 0]
    assert [(b.y, b.height) for b in chart.bars] == [(0, 100), (75, 25), (100, 0), (100, 0)]
    assert [b.slot_x for b in chart.bars] == [0, 25, 50, 75]
    assert all(b.x > b.slot_x and b.x + b.width < b.slot_x + b.slot_width for b in chart.bars)
    assert not chart.empty
    assert [p.label for p in chart.rows] == ["Dec 1, 2026", "Dec 2, 2026", "Dec 3, 2026"]
    # A tiny value next to a big one still shows.
    tiny = bar_chart("t", "T", [Point("a", "a", 1), Point("b", "b", 10_000)])
    assert 0 < tiny.bars[0].height < 2
    # The y axis' column fits its longest label.
    assert bar_chart("w", "W", [Point("a", "a", 1_500_000)]).axis_width > chart.axis_width


def test_a_limit_is_a_line_within_the_axis() -> None:
    chart = bar_chart("x", "X", [Point("a", "a", 3)], limit=20)
    assert chart.y_ticks[-1].text == "20" and chart.limit is not None
    assert chart.limit.pos == 0 and chart.limit.text == "Limit 20"


def test_no_usage_is_the_empty_state() -> None:
    chart = bar_chart("x", "X", day_points(DEC, {}, today=date(2026, 12, 4)))
    assert chart.empty and chart.empty_text == "No usage yet"
    assert bar_chart("e", "E", []).empty


def test_days_to_come_have_no_value() -> None:
    points = day_points(DEC[:5], {date(2026, 12, 2): 3}, today=date(2026, 12, 3))
    assert [p.value for p in points] == [0, 3, 0, None, None]
    assert [p.text for p in points] == ["0", "3", "0", "", ""]


def test_the_span_follows_the_quota_reset() -> None:
    today = date(2026, 12, 4)
    daily = chart_span("day", date(2026, 12, 1), date(2026, 12, 31), today)
    assert (daily.first, daily.last, len(daily.days)) == (date(2026, 11, 28), today, 7)
    assert span_text(daily) == "Last 7 days"
    monthly = chart_span("billing_period", date(2026, 12, 1), date(2026, 12, 31), today)
    assert (monthly.first, monthly.last) == (date(2026, 12, 1), date(2026, 12, 31))
    assert span_text(monthly) == "Dec 1 – Dec 31, 2026"
    never = chart_span("never", date(2026, 12, 1), date(2026, 12, 31), today)
    assert len(never.days) == 30 and never.last == today
    # A yearly period: at most 31 days, the last ones up to today.
    yearly = chart_span("billing_period", date(2026, 1, 15), date(2027, 1, 14), today)
    assert len(yearly.days) == 31 and yearly.last == date(2026, 12, 4)


def test_a_daily_quota_charts_today_against_its_limit() -> None:
    today = date(2026, 12, 4)
    span = chart_span("day", date(2026, 12, 1), date(2026, 12, 31), today)
    quota = Quota("ai_requests", 20, "day")
    chart = meter_chart(AI, quota, span, {today: 17, date(2026, 12, 2): 20}, today)
    assert chart.headline == "17 today"
    assert chart.period == "Last 7 days · limit 20 a day"
    assert chart.summary == "17 AI requests today of 20 a day; 37 in the last 7 days."
    assert chart.limit is not None and chart.limit.pos == 0
    assert [b.point.short for b in chart.bars][-1] == "Dec 4"


def test_a_period_quota_charts_the_period() -> None:
    today = date(2026, 12, 4)
    span = chart_span("billing_period", date(2026, 12, 1), date(2026, 12, 31), today)
    quota = Quota("ai_requests", 1000, "billing_period")
    chart = meter_chart(AI, quota, span, {date(2026, 12, 3): 4}, today)
    assert chart.headline == "4 this period" and chart.limit is None
    assert chart.summary == "4 AI requests in this period; busiest day Dec 3, 2026 with 4."
    assert len(chart.bars) == 31 and len(chart.rows) == 4  # the days to come: no table rows
    empty = meter_chart(AI, quota, span, {}, today)
    assert empty.empty and empty.summary == "No AI requests used yet in this period."


def test_the_peak_point_is_the_first_greatest_or_none() -> None:
    points = [Point("a", "a", 2), Point("b", "b", 5), Point("c", "c", 5), Point("d", "d", None)]
    assert peak_point(points) == points[1]
    assert peak_point([Point("a", "a", 0), Point("b", "b", None)]) is None
    assert peak_point([]) is None


def test_a_quota_that_never_resets_charts_the_last_30_days() -> None:
    today = date(2026, 12, 4)
    span = chart_span("never", date(2026, 12, 1), date(2026, 12, 31), today)
    chart = meter_chart(AI, Quota("ai_requests", 5, "never"), span, {today: 3}, today)
    assert (chart.headline, chart.period) == ("3 in 30 days", "Last 30 days")
    assert chart.summary == "3 AI requests in 30 days; busiest day Dec 4, 2026 with 3."
    assert chart.limit is None and len(chart.bars) == 30
