"""Geometry of the inline SVG bar charts (the customer's usage per day, the admin's revenue and
usage): bar positions and heights, day buckets and labels. Pure: numbers in, numbers out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

# Room left above the tallest bar and below it for the axis line.
HEADROOM = 4
# The least height of a non-zero bar, so a small value next to a big one still shows.
MIN_BAR = 1.5


def bar_height(value: int, peak: int, height: int) -> float:
    """A bar's height on a chart `height` tall whose tallest bar shows `peak`."""
    if not value or not peak:
        return 0
    return max(MIN_BAR, round(value * (height - HEADROOM) / peak, 2))


def place_bars(
    values: Sequence[int], *, slot: int, bar_width: int, height: int
) -> list[tuple[int, float]]:
    """(x, height) of each bar: `bar_width` wide, centred in a `slot` per value."""
    peak = max(values, default=0)
    inset = (slot - bar_width) // 2
    return [
        (index * slot + inset, bar_height(value, peak, height))
        for index, value in enumerate(values)
    ]


def day_range(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def last_days(first_moment: datetime, count: int) -> list[date]:
    """`count` days starting on the day of `first_moment`."""
    return [(first_moment + timedelta(days=i)).date() for i in range(count)]


def day_label(day: date) -> str:
    return f"{day:%b %-d}"


def month_label(month: date) -> str:
    return f"{month:%b %Y}"


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    text: str
    x: float
    height: float


@dataclass(frozen=True)
class BarChart:
    """A labelled bar chart: one bar per (label, value, text) point."""

    id: str
    title: str
    summary: str
    bars: list[Bar]
    bar_width: float
    width: int
    height: int = 120


def bar_chart(
    chart_id: str,
    title: str,
    points: list[tuple[str, int, str]],
    summary: str,
    *,
    slot: int = 24,
    height: int = 120,
) -> BarChart:
    bar_width = slot - HEADROOM
    placed = place_bars(
        [value for _, value, _ in points], slot=slot, bar_width=bar_width, height=height
    )
    bars = [
        Bar(label=label, value=value, text=text, x=x, height=bar_h)
        for (label, value, text), (x, bar_h) in zip(points, placed, strict=True)
    ]
    return BarChart(
        id=chart_id,
        title=title,
        summary=summary,
        bars=bars,
        bar_width=bar_width,
        width=max(slot * len(points), slot),
        height=height,
    )
