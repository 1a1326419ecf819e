"""The customer's usage chart per meter (issue 21, item 1), over the span its quota resets on:

- a daily quota (`reset = "day"`): the last 7 days, today last, with the daily limit drawn as a
  line, so "how close did I get, and how much is left today" reads at a glance;
- a billing-period quota: the current period's days, those still to come left empty, so the
  chart also shows how far into the period the customer is;
- a quota that never resets: the last 30 days.

Pure: the daily totals come in, a `Chart` (app/lib/charts.py) goes out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from app.catalog.models import Meter, Quota
from app.lib.charts import Chart, bar_chart, day_label, day_points, day_range, peak_point

DAILY_DAYS = 7
NEVER_DAYS = 30
PERIOD_MAX_DAYS = 31


@dataclass(frozen=True)
class Span:
    """The days a meter's chart spans, and how the chart names them."""

    days: list[date]
    kind: str  # "day" | "billing_period" | "never"

    @property
    def first(self) -> date:
        return self.days[0]

    @property
    def last(self) -> date:
        return self.days[-1]


def chart_span(reset: str, period_first: date, period_last: date, today: date) -> Span:
    """The days to chart for a quota resetting on `reset`, the billing period being
    `period_first`..`period_last` (both included)."""
    if reset == "day":
        return Span(day_range(today - timedelta(days=DAILY_DAYS - 1), today), "day")
    if reset == "never":
        return Span(day_range(today - timedelta(days=NEVER_DAYS - 1), today), "never")
    first = max(period_first, today - timedelta(days=PERIOD_MAX_DAYS - 1))
    last = max(first, min(period_last, first + timedelta(days=PERIOD_MAX_DAYS - 1)))
    return Span(day_range(first, last), "billing_period")


def span_text(span: Span) -> str:
    """'Last 7 days', 'Dec 1 - Dec 31, 2026' (an en dash)."""
    if span.kind == "day":
        return f"Last {DAILY_DAYS} days"
    if span.kind == "never":
        return f"Last {NEVER_DAYS} days"
    return f"{day_label(span.first)} – {day_label(span.last)}, {span.last.year}"


def meter_chart(
    meter: Meter, quota: Quota | None, span: Span, totals: dict[date, int], today: date
) -> Chart:
    """`totals`: the meter's usage per day (days without usage may be missing)."""
    points = day_points(span.days, totals, today=today)
    total = sum(p.value or 0 for p in points)
    name = meter.name
    limit = quota.included if quota is not None and span.kind == "day" else None
    if span.kind == "day":
        used_today = totals.get(today, 0)
        headline = f"{used_today:,} today"
        period = span_text(span) + (f" · limit {limit:,} a day" if limit else "")
        summary = (
            f"{used_today:,} {name} today"
            + (f" of {limit:,} a day" if limit else "")
            + f"; {total:,} in the last {DAILY_DAYS} days."
        )
    else:
        headline = (
            f"{total:,} this period"
            if span.kind == "billing_period"
            else f"{total:,} in {NEVER_DAYS} days"
        )
        period = span_text(span)
        where = "in this period" if span.kind == "billing_period" else f"in {NEVER_DAYS} days"
        peak = peak_point(points)
        summary = (
            f"{total:,} {name} {where}; busiest day {peak.label} with {peak.text}."
            if peak
            else f"No {name} used yet {where}."
        )
    if not total and span.kind == "day":
        summary = f"No {name} used yet in the last {DAILY_DAYS} days."
    return bar_chart(
        meter.code,
        name,
        points,
        headline=headline,
        period=period,
        summary=summary,
        value_heading=name,
        limit=limit or None,
    )
