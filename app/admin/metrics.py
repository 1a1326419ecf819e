"""The overview's numbers: MRR, paid subscriptions, trials, churn, revenue and usage charts.

Definitions (shown on the overview page too, and pinned by tests/integration/admin):

- **Paid subscription**: a subscription on a plan with a non-zero price whose status is
  `active` or `past_due`. `trialing` is not paid: it is counted under *trials*.
- **MRR**: the monthly equivalent of every paid subscription's catalog price for its interval
  (yearly prices divided by 12), summed per currency, rounded to the minor unit once at the end.
  A paid plan set without Stripe (by the API or an admin) counts at its list price.
- **Churn this month** (UTC calendar month): `churned / (churned + retained)`, where *churned*
  is subscriptions whose `canceled_at` falls in this month and that are no longer paid now
  (back on a free plan, or ended), and *retained* is subscriptions paid now whose paid life
  began before the 1st of the month (Stripe's `customer.subscription.created` in the event
  ledger, else the row's `created_at`). So the denominator is "paid at the start of the month"
  plus those that started and ended within the month; the rate never exceeds 100 %.
- **Revenue by month**: sum of `amount_paid` of invoices with status `paid`, by the UTC month
  of the invoice date, over the last 12 months including the current one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from app.admin.daily_reconcile import LastRun, last_run
from app.admin.repository import AdminRepository, PaymentProblem, SubscriptionCount
from app.catalog.models import Catalog, Plan
from app.customers.statuses import SubscriptionStatus
from app.lib.charts import (
    Chart,
    bar_chart,
    compact_money,
    day_points,
    last_days,
    month_points,
    peak_point,
)
from app.lib.clock import add_months, start_of_day, start_of_month, utcnow
from app.lib.money import format_money, per_month
from app.metering.outbox import StripeOutboxMessage

USAGE_DAYS = 30
REVENUE_MONTHS = 12
# The overview's figures are computed at most this often per process (the page says as of when).
OVERVIEW_SECONDS = 10.0


@dataclass(frozen=True)
class PlanCount:
    plan: Plan | None
    slug: str
    active: int
    trialing: int
    past_due: int
    other: int

    @property
    def name(self) -> str:
        return self.plan.name if self.plan else self.slug

    @property
    def live(self) -> int:
        return self.active + self.trialing + self.past_due


@dataclass(frozen=True)
class Churn:
    churned: int
    base: int

    @property
    def rate(self) -> float | None:
        return self.churned / self.base if self.base else None

    @property
    def text(self) -> str:
        rate = self.rate
        return "—" if rate is None else f"{rate * 100:.1f} %"


@dataclass(frozen=True)
class Overview:
    now: datetime
    mrr: dict[str, int]
    paid: int
    plans: list[PlanCount]
    trials: int
    past_due: int
    churn: Churn
    revenue: list[Chart]
    revenue_rows: list[tuple[str, dict[str, int]]]
    usage: list[Chart]
    problems: list[PaymentProblem]
    # Meter events Stripe rejected after accepting them (stripe_outbox rows flagged `rejected`).
    rejected_meter_events: list[StripeOutboxMessage] = field(default_factory=list)
    # The latest daily reconcile with Stripe (app/admin/daily_reconcile.py), None before any.
    last_reconcile: LastRun | None = None

    @property
    def mrr_text(self) -> str:
        if not self.mrr:
            return format_money(0, "usd")
        return " + ".join(format_money(v, c) for c, v in sorted(self.mrr.items()))


class OverviewCache:
    """The overview's figures (as the page's rendered HTML), computed at most once per
    `seconds` in a process, by one request at a time (the others wait for its result rather
    than compute the same).

    Each figure costs a bounded query, but some count every subscription (a few milliseconds
    at 10,000 customers): an overview every few seconds per process costs the same at any
    size, and the page shows the time its figures were computed (`Overview.now`)."""

    def __init__(self, seconds: float = OVERVIEW_SECONDS) -> None:
        self.seconds = seconds
        self._value: Any = None
        self._expires = 0.0
        self._lock: asyncio.Lock | None = None

    def clear(self) -> None:
        self._value = None

    def holds(self, value: Any) -> bool:
        """Whether `value` is what `get` answers now (the page cache serves a page showing it
        only while it is: app/billing/page_cache.py `figures_while`)."""
        return value is self._value and time.monotonic() < self._expires

    async def get(self, compute: Callable[[], Awaitable[Any]]) -> Any:
        value = self._value
        if value is not None and time.monotonic() < self._expires:
            return value
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            value = self._value
            if value is not None and time.monotonic() < self._expires:
                return value
            value = await compute()
            self._value, self._expires = value, time.monotonic() + self.seconds
            return value


def month_key(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def _values(statuses: frozenset[SubscriptionStatus]) -> list[str]:
    return sorted(status.value for status in statuses)


class AdminMetrics:
    def __init__(self, repo: AdminRepository, catalog: Catalog) -> None:
        self.repo = repo
        self.catalog = catalog

    def paid_plan_slugs(self) -> list[str]:
        return [p.slug for p in self.catalog.plans.values() if not p.is_free]

    def free_plan_slugs(self) -> list[str]:
        return [p.slug for p in self.catalog.plans.values() if p.is_free]

    async def overview(self, now: datetime | None = None) -> Overview:
        now = now or utcnow()
        counts = await self.repo.subscription_counts()
        mrr, paid = self._mrr(counts)
        month_start = start_of_month(now)
        churned = await self.repo.churned_between(
            month_start,
            add_months(month_start, 1),
            self.free_plan_slugs(),
            _values(SubscriptionStatus.live()),
        )
        retained = await self.repo.paid_since_before(
            month_start, self.paid_plan_slugs(), _values(SubscriptionStatus.paid())
        )
        revenue, revenue_rows = await self._revenue(month_start)
        return Overview(
            now=now,
            mrr=mrr,
            paid=paid,
            plans=self._plan_counts(counts),
            trials=sum(n for _, _, status, n in counts if status == "trialing"),
            past_due=sum(n for _, _, status, n in counts if status == "past_due"),
            churn=Churn(churned=churned, base=churned + retained),
            revenue=revenue,
            revenue_rows=revenue_rows,
            usage=await self._usage(now),
            problems=await self.repo.payment_problems(
                _values(SubscriptionStatus.payment_problem())
            ),
            rejected_meter_events=await self.repo.rejected_meter_events(),
            last_reconcile=await last_run(self.repo.session),
        )

    def _mrr(self, counts: list[SubscriptionCount]) -> tuple[dict[str, int], int]:
        twelfths: dict[str, int] = {}  # 12 x MRR, so yearly prices add up exactly
        paid = 0
        for slug, interval, status, n in counts:
            plan = self.catalog.plan(slug)
            if plan is None or plan.is_free or status not in SubscriptionStatus.paid():
                continue
            price = plan.price("year" if interval == "year" else "month") or plan.price("month")
            if price is None or not price.amount:
                continue
            per_year = price.amount if price.interval == "year" else price.amount * 12
            twelfths[price.currency] = twelfths.get(price.currency, 0) + per_year * n
            paid += n
        # Round half up to the minor unit, once, after summing.
        return {c: per_month(v) for c, v in twelfths.items()}, paid

    def _plan_counts(self, counts: list[SubscriptionCount]) -> list[PlanCount]:
        by_plan: dict[str, dict[str, int]] = {}
        for slug, _interval, status, n in counts:
            bucket = by_plan.setdefault(slug, {})
            key = status if status in ("active", "trialing", "past_due") else "other"
            bucket[key] = bucket.get(key, 0) + n
        order = [*self.catalog.plans, *sorted(set(by_plan) - set(self.catalog.plans))]
        return [
            PlanCount(
                plan=self.catalog.plan(slug),
                slug=slug,
                active=by_plan.get(slug, {}).get("active", 0),
                trialing=by_plan.get(slug, {}).get("trialing", 0),
                past_due=by_plan.get(slug, {}).get("past_due", 0),
                other=by_plan.get(slug, {}).get("other", 0),
            )
            for slug in order
            if slug in by_plan or (self.catalog.plan(slug) and self.catalog.plans[slug].public)
        ]

    async def _revenue(
        self, month_start: datetime
    ) -> tuple[list[Chart], list[tuple[str, dict[str, int]]]]:
        first = add_months(month_start, -(REVENUE_MONTHS - 1))
        months = [add_months(first, i) for i in range(REVENUE_MONTHS)]
        totals = await self.repo.revenue_by_month(first)
        currencies = sorted({c for _, c in totals}) or ["usd"]
        rows = [
            (month_key(m), {c: totals.get((month_key(m), c), 0) for c in currencies})
            for m in months
        ]
        charts = []
        for currency in currencies:
            amounts = {m.date(): totals.get((month_key(m), currency), 0) for m in months}

            def money(value: float, currency: str = currency) -> str:
                return format_money(round(value), currency)

            points = month_points([m.date() for m in months], amounts, money)
            total = sum(amounts.values())
            best = peak_point(points)
            summary = (
                f"Revenue ({currency.upper()}) over the last {REVENUE_MONTHS} months: "
                f"{money(total)} in total"
                + (f"; highest {best.label} with {best.text}." if best else ".")
            )
            charts.append(
                bar_chart(
                    f"revenue-{currency}",
                    currency.upper(),
                    points,
                    headline=f"{money(total)} in total",
                    period=f"Last {REVENUE_MONTHS} months, by invoice date",
                    summary=summary,
                    value_heading="Revenue",
                    label_heading="Month",
                    empty_text="No revenue yet",
                    tick_text=partial(compact_money, currency=currency),
                )
            )
        return charts, rows

    async def _usage(self, now: datetime) -> list[Chart]:
        first = start_of_day(now) - timedelta(days=USAGE_DAYS - 1)
        days = last_days(first, USAGE_DAYS)
        totals = await self.repo.usage_by_day(first.date())
        charts = []
        for code, meter in self.catalog.meters.items():
            points = day_points(days, {day: totals.get((code, day), 0) for day in days})
            total = sum(p.value or 0 for p in points)
            best = peak_point(points)
            summary = f"{meter.name} over the last {USAGE_DAYS} days: {total:,} in total" + (
                f"; busiest day {best.label} with {best.text}." if best else "."
            )
            charts.append(
                bar_chart(
                    f"usage-{code}",
                    meter.name,
                    points,
                    headline=f"{total:,} in total",
                    period=f"Last {USAGE_DAYS} days",
                    summary=summary,
                    value_heading=meter.name,
                )
            )
        return charts
