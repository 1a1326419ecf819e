"""The bar charts' view model (issue 21, item 1): one builder for the customer's usage charts
and the admin's revenue, usage and credit charts, drawn by one Jinja macro
(templates/components/chart.html) as server-rendered SVG.

Geometry is in percent of the plot, so the SVG is never stretched: bars, gridlines and labels
keep their shape at any width, and text stays text. The y axis gets a few round ticks
(0, 5, 10, 15, 20...), the x axis a label every few bars: a wide set and a narrow subset
(every other one), the page's CSS showing the narrow set when the chart itself is narrow.
Pure: numbers in, numbers out."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from app.lib.money import ZERO_DECIMAL_CURRENCIES, format_money

# Multiples of a power of ten a y-axis step may take: 1, 2, 2.5 and 5 read as round.
STEPS = (1, 2, 2.5, 5, 10)
# At most this many intervals on the y axis (so 5 labels at most, 0 included).
Y_INTERVALS = 4
# At most this many labels on the x axis: a wide chart, and a narrow one (a phone, a column).
X_LABELS_WIDE = 7
X_LABELS_NARROW = 4
# A non-zero bar is at least this tall (percent of the plot), so it shows next to a big one.
MIN_BAR = 1.5
# Approximate width of a y-axis label's character at the axis' font size (px), for its column.
CHAR_PX = 7


def day_range(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def last_days(first_moment: datetime, count: int) -> list[date]:
    """`count` days starting on the day of `first_moment`."""
    return [(first_moment + timedelta(days=i)).date() for i in range(count)]


def day_label(day: date) -> str:
    """'Mar 5': an x-axis label."""
    return f"{day:%b} {day.day}"


def full_day_label(day: date) -> str:
    """'Mar 5, 2026': a tooltip's and a table's, the app's one date format."""
    return f"{day:%b} {day.day}, {day.year}"


def month_label(month: date) -> str:
    return f"{month:%b %Y}"


def compact_number(value: float) -> str:
    """'950', '1.5k', '20k', '1M', '2.5B': an axis label, short enough for a narrow column."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}".removesuffix(".0") + suffix
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def compact_money(minor: float, currency: str) -> str:
    """'$50', '$2.50', '$1.5k', '¥20k': a money axis label (`minor`: minor units)."""
    zero_decimal = currency.lower() in ZERO_DECIMAL_CURRENCIES
    major = minor if zero_decimal else minor / 100
    if abs(major) < 1000:
        return format_money(round(minor), currency)
    whole = round(major)
    text = format_money(whole if zero_decimal else whole * 100, currency)
    return text.replace(f"{abs(whole):,}", compact_number(abs(whole)), 1)


def nice_step(peak: float, intervals: int = Y_INTERVALS) -> int:
    """The least round step (1, 2, 2.5 or 5 times a power of ten, a whole number) with which
    `intervals` steps reach `peak`."""
    if peak <= intervals:
        return 1
    raw = peak / intervals
    power = 10 ** math.floor(math.log10(raw))
    for multiple in STEPS:
        step = multiple * power
        if step >= raw and step == int(step):  # whole steps: values are counts or cents
            return int(step)
    return int(10 * power)  # not reached: STEPS ends at 10


def y_ticks(peak: float, intervals: int = Y_INTERVALS) -> list[float]:
    """Round tick values from 0 to the first one at or above `peak` (0 alone when it is 0)."""
    if peak <= 0:
        return [0]
    step = nice_step(peak, intervals)
    count = math.ceil(peak / step - 1e-9)
    return [i * step for i in range(count + 1)]


@dataclass(frozen=True)
class Point:
    """One bar's data: `label` for its tooltip and the table ('Dec 18, 2026'), `short` for the
    axis ('Dec 18'), `value` (None: a day still to come, drawn as room, not as a bar)."""

    label: str
    short: str
    value: int | None
    text: str = ""


@dataclass(frozen=True)
class Tick:
    text: str
    pos: float  # percent: from the top for a y tick, from the left for an x tick
    anchor: str = "middle"  # an x tick's text-anchor: start at the left edge, end at the right
    narrow: bool = True  # an x tick shown on a narrow chart too


@dataclass(frozen=True)
class BarView:
    point: Point
    slot_x: float  # percent: the column the bar stands in (its hover area)
    slot_width: float
    x: float
    width: float
    y: float  # percent from the top
    height: float


@dataclass(frozen=True)
class Chart:
    """A bar chart as the macro draws it. `headline`: the key figure by the title ('17 this
    period'); `period`: what the x axis spans ('Last 7 days'); `summary`: one sentence for
    screen readers; `limit`: a dashed line with its label (a daily quota)."""

    id: str
    title: str
    headline: str
    period: str
    summary: str
    bars: list[BarView]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    axis_width: int
    value_heading: str = "Value"
    label_heading: str = "Day"
    empty_text: str = "No usage yet"
    limit: Tick | None = None
    height: int = 160

    @property
    def empty(self) -> bool:
        return not any(bar.point.value for bar in self.bars)

    @property
    def rows(self) -> list[Point]:
        """The table's rows: every point but those still to come."""
        return [bar.point for bar in self.bars if bar.point.value is not None]


def x_ticks(points: Sequence[Point]) -> list[Tick]:
    """A label every `wide` bars (at most X_LABELS_WIDE) counted back from the last bar (today,
    or the range's end, is always named), every other one of those (or fewer) also on a narrow
    chart. The last label is anchored at the right edge and a first one near the left edge at
    its bar's left side, so no label runs out of the chart."""
    count = len(points)
    if not count:
        return []
    wide = math.ceil(count / X_LABELS_WIDE)
    narrow = wide * math.ceil(math.ceil(count / X_LABELS_NARROW) / wide)
    ticks = []
    for index in range((count - 1) % wide, count, wide):
        if index == count - 1 and count > 1:
            anchor, pos = "end", 100.0
        elif index < 3:
            anchor, pos = "start", round(index * 100 / count, 3)
        else:
            anchor, pos = "middle", round((index + 0.5) * 100 / count, 3)
        is_narrow = (count - 1 - index) % narrow == 0
        ticks.append(Tick(points[index].short, pos, anchor, narrow=is_narrow))
    return ticks


def bar_chart(
    chart_id: str,
    title: str,
    points: Sequence[Point],
    *,
    headline: str = "",
    period: str = "",
    summary: str = "",
    value_heading: str = "Value",
    label_heading: str = "Day",
    empty_text: str = "No usage yet",
    limit: int | None = None,
    limit_text: str = "",
    tick_text: Callable[[float], str] = compact_number,
    height: int = 160,
) -> Chart:
    """The chart of `points`, one bar each, on a y axis of round ticks that reaches the
    tallest bar (and `limit`, when there is one, drawn as a line labelled `limit_text`)."""
    values = [p.value or 0 for p in points]
    peak = max([*values, limit or 0], default=0)
    ticks = y_ticks(peak)
    top = ticks[-1] or 1
    count = max(len(points), 1)
    slot = 100 / count
    # Thin gaps between many bars, wider ones between few.
    fill = 0.6 if count <= 8 else 0.7 if count <= 40 else 0.85
    bars = []
    for index, (point, value) in enumerate(zip(points, values, strict=True)):
        bar_h = max(MIN_BAR, value * 100 / top) if value > 0 else 0.0
        bars.append(
            BarView(
                point=point,
                slot_x=round(index * slot, 3),
                slot_width=round(slot, 3),
                x=round((index + (1 - fill) / 2) * slot, 3),
                width=round(slot * fill, 3),
                y=round(100 - bar_h, 3),
                height=round(bar_h, 3),
            )
        )
    y = [Tick(tick_text(v), round(100 - v * 100 / top, 3)) for v in ticks]
    limit_tick = None
    if limit:
        limit_tick = Tick(
            limit_text or f"Limit {tick_text(limit)}", round(100 - limit * 100 / top, 3)
        )
    return Chart(
        id=chart_id,
        title=title,
        headline=headline,
        period=period,
        summary=summary,
        bars=bars,
        y_ticks=y,
        x_ticks=x_ticks(points),
        axis_width=max(len(t.text) for t in y) * CHAR_PX + 8,
        value_heading=value_heading,
        label_heading=label_heading,
        empty_text=empty_text,
        limit=limit_tick,
        height=height,
    )


def peak_point(points: Sequence[Point]) -> Point | None:
    """The point with the greatest value (the first of equals), None when all are 0 or none."""
    best = max(points, key=lambda p: p.value or 0, default=None)
    return best if best is not None and best.value else None


def day_points(
    days: Sequence[date],
    amounts: dict[date, int],
    *,
    today: date | None = None,
    text: Callable[[int], str] = lambda v: f"{v:,}",
) -> list[Point]:
    """A point per day (its amount, 0 when none); days after `today` have no value yet."""
    return [
        Point(
            full_day_label(day),
            day_label(day),
            None if today is not None and day > today else amounts.get(day, 0),
            "" if today is not None and day > today else text(amounts.get(day, 0)),
        )
        for day in days
    ]


def month_points(
    months: Sequence[date], amounts: dict[date, int], text: Callable[[int], str]
) -> list[Point]:
    """A point per month: 'Jan '26' on the axis, 'Jan 2026' in the tooltip and the table."""
    return [
        Point(month_label(m), f"{m:%b} '{m:%y}", amounts.get(m, 0), text(amounts.get(m, 0)))
        for m in months
    ]
