"""Admin rules: the overview's numbers, searches, and audited actions on customers.

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

Actions (grant credits, change plan, cancel, resume, portal view, API keys, event replay) go
through the owning domain's service, which commits its own work; the audit entry is written
after it succeeds, in its own transaction. Each confirm form carries a one-time `request_id`:
a resubmitted form finds its audit entry and does nothing twice (the credit grant is also
idempotent by its transaction id, which is derived from the `request_id`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import AuditLog
from app.admin.repository import SORTS, AdminRepository, CustomerQuery, CustomerRow
from app.apikeys.models import ApiKey
from app.apikeys.service import ApiKeyService
from app.billing.pages import BillingPages
from app.billing.rules import clamp_page, page_count
from app.billing.service import LIVE_STATUSES, BillingService, plan_item
from app.catalog.models import Catalog, Plan
from app.customers.models import Customer, Subscription
from app.customers.service import CustomerInput, CustomerService
from app.lib.clock import add_months, start_of_day, start_of_month, utcnow
from app.lib.errors import NotFound, ValidationFailed, quoted
from app.lib.money import format_money, per_month
from app.metering.service import MeteringService
from app.stripe_sync.models import StripeEvent
from app.stripe_sync.service import StripeEventService

T = TypeVar("T")
PER_PAGE = 25
PAID_STATUSES = ("active", "past_due")
PROBLEM_STATUSES = ("past_due", "unpaid")
SUBSCRIPTION_STATUSES = (
    "active",
    "trialing",
    "past_due",
    "unpaid",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "paused",
)
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")
EVENT_STATUSES = ("received", "processed", "failed", "ignored")
USAGE_DAYS = 30
REVENUE_MONTHS = 12
# How long a confirmed "open portal view" lets the admin look at the customer's pages.
PORTAL_VIEW_WINDOW = timedelta(minutes=30)
MAX_REASON = 500
MAX_GRANT = 10_000_000

ACTIONS = {
    "grant_credits": "Grant credits",
    "change_plan": "Change plan",
    "cancel": "Cancel subscription",
    "resume": "Resume subscription",
    "view_portal": "Open portal view",
    "api_key.create": "Create API key",
    "api_key.revoke": "Revoke API key",
    "stripe_event.replay": "Replay Stripe event",
}


@dataclass(frozen=True)
class Actor:
    user_id: int
    email: str


@dataclass(frozen=True)
class Outcome:
    message: str
    category: str = "success"
    entry: AuditLog | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    pages: int
    total: int
    per_page: int = PER_PAGE


# --- charts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    text: str
    x: float
    height: float


@dataclass(frozen=True)
class BarChart:
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
    peak = max((value for _, value, _ in points), default=0)
    usable = height - 4
    bars = [
        Bar(
            label=label,
            value=value,
            text=text,
            x=index * slot + 2,
            height=(max(1.5, round(value * usable / peak, 2)) if value and peak else 0),
        )
        for index, (label, value, text) in enumerate(points)
    ]
    return BarChart(
        id=chart_id,
        title=title,
        summary=summary,
        bars=bars,
        bar_width=slot - 4,
        width=max(slot * len(points), slot),
        height=height,
    )


# --- view models -------------------------------------------------------------------------------


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
    revenue: list[BarChart]
    revenue_rows: list[tuple[str, dict[str, int]]]
    usage: list[BarChart]
    problems: list[tuple[Customer, Subscription, Any]]

    @property
    def mrr_text(self) -> str:
        if not self.mrr:
            return format_money(0, "usd")
        return " + ".join(format_money(v, c) for c, v in sorted(self.mrr.items()))


@dataclass(frozen=True)
class HistoryRow:
    at: datetime
    source: str
    text: str


@dataclass
class CustomerDetail:
    customer: Customer
    account: Any
    meters: Any
    ledger: list[Any]
    invoices: list[Any]
    invoice_page: int
    invoice_pages: int
    invoice_total: int
    cards: list[Any]
    usage: list[Any]
    events: list[StripeEvent]
    history: list[HistoryRow]
    audit: list[AuditLog]


def month_key(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def new_request_id() -> str:
    return secrets.token_urlsafe(16)


def _reason(value: str | None) -> str:
    reason = (value or "").strip()
    if not reason:
        raise ValidationFailed("Say why: a reason is required.", field="reason")
    if len(reason) > MAX_REASON:
        raise ValidationFailed(
            f"The reason must be at most {MAX_REASON} characters.", field="reason"
        )
    return reason


def _request_id(value: str | None) -> str:
    value = (value or "").strip()
    if not value or len(value) > 64:
        raise ValidationFailed("This form has expired; open it again.", field="request_id")
    return value


class AdminService:
    def __init__(
        self,
        session: AsyncSession,
        catalog: Catalog,
        *,
        customers: CustomerService,
        metering: MeteringService,
        pages: BillingPages,
        billing: BillingService,
        events: StripeEventService,
        api_keys: ApiKeyService,
    ) -> None:
        self.session = session
        self.catalog = catalog
        self.customers = customers
        self.metering = metering
        self.pages = pages
        self.billing = billing
        self.events = events
        self.api_keys = api_keys
        self.repo = AdminRepository(session)

    # Overview ------------------------------------------------------------------------------

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
            sorted(LIVE_STATUSES),
        )
        retained = await self.repo.paid_since_before(
            month_start, self.paid_plan_slugs(), list(PAID_STATUSES)
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
            problems=await self.repo.payment_problems(list(PROBLEM_STATUSES)),
        )

    def _mrr(self, counts: list[tuple[str, str, str, int]]) -> tuple[dict[str, int], int]:
        twelfths: dict[str, int] = {}  # 12 x MRR, so yearly prices add up exactly
        paid = 0
        for slug, interval, status, n in counts:
            plan = self.catalog.plan(slug)
            if plan is None or plan.is_free or status not in PAID_STATUSES:
                continue
            price = plan.price("year" if interval == "year" else "month") or plan.price("month")
            if price is None or not price.amount:
                continue
            per_year = price.amount if price.interval == "year" else price.amount * 12
            twelfths[price.currency] = twelfths.get(price.currency, 0) + per_year * n
            paid += n
        # Round half up to the minor unit, once, after summing.
        return {c: per_month(v) for c, v in twelfths.items()}, paid

    def _plan_counts(self, counts: list[tuple[str, str, str, int]]) -> list[PlanCount]:
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
    ) -> tuple[list[BarChart], list[tuple[str, dict[str, int]]]]:
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
            points = [
                (
                    f"{m:%b %Y}",
                    totals.get((month_key(m), currency), 0),
                    format_money(totals.get((month_key(m), currency), 0), currency),
                )
                for m in months
            ]
            total = sum(v for _, v, _ in points)
            best = max(points, key=lambda p: p[1])
            summary = (
                f"Revenue ({currency.upper()}) over the last {REVENUE_MONTHS} months: "
                f"{format_money(total, currency)} in total"
                + (f"; highest {best[0]} with {best[2]}." if best[1] else ".")
            )
            charts.append(
                bar_chart(f"revenue-{currency}", f"Revenue ({currency.upper()})", points, summary)
            )
        return charts, rows

    async def _usage(self, now: datetime) -> list[BarChart]:
        first = start_of_day(now) - timedelta(days=USAGE_DAYS - 1)
        days = [(first + timedelta(days=i)).date() for i in range(USAGE_DAYS)]
        totals = await self.repo.usage_by_day(first)
        charts = []
        for code, meter in self.catalog.meters.items():
            points = [(f"{d:%b %-d}", totals.get((code, d), 0), "") for d in days]
            points = [(label, v, f"{v:,}") for label, v, _ in points]
            total = sum(v for _, v, _ in points)
            best = max(points, key=lambda p: p[1])
            summary = f"{meter.name} over the last {USAGE_DAYS} days: {total:,} in total" + (
                f"; busiest day {best[0]} with {best[2]}." if best[1] else "."
            )
            charts.append(bar_chart(f"usage-{code}", meter.name, points, summary, slot=10))
        return charts

    # Customers -----------------------------------------------------------------------------

    def customer_query(self, q: str, plan: str, status: str, sort: str) -> CustomerQuery:
        return CustomerQuery(
            q=(q or "").strip()[:254],
            plan=plan if plan in self.catalog.plans else "",
            status=status if status in SUBSCRIPTION_STATUSES else "",
            sort=sort if sort in SORTS else "newest",
        )

    async def search_customers(self, params: CustomerQuery, page: Any) -> Page[CustomerRow]:
        total = await self.repo.count_customers(params)
        pages = page_count(total, PER_PAGE)
        number = clamp_page(page, pages)
        rows = await self.repo.customers(params, offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
        return Page(rows, number, pages, total)

    async def customer(self, external_id: str) -> Customer:
        return await self.customers.get(external_id)

    async def customer_detail(self, external_id: str, invoice_page: Any = 1) -> CustomerDetail:
        customer = await self.customers.get(external_id)
        account = await self.pages.account(customer)
        rows, number, pages, total = await self.pages.invoices(customer, invoice_page)
        events: list[StripeEvent] = []
        if customer.stripe_customer_id:
            events = await self.repo.customer_events(customer.stripe_customer_id)
        audit = await self.repo.audit_for("customer", customer.external_id)
        return CustomerDetail(
            customer=customer,
            account=account,
            meters=await self.pages.meters(customer, plan=account.plan),
            ledger=await self.pages.ledger(customer),
            invoices=rows,
            invoice_page=number,
            invoice_pages=pages,
            invoice_total=total,
            cards=await self.pages.cards(customer, account),
            usage=await self.metering.recent_events(customer.id),
            events=events,
            history=self._history(customer, events, audit),
            audit=audit,
        )

    def _history(
        self, customer: Customer, events: list[StripeEvent], audit: list[AuditLog]
    ) -> list[HistoryRow]:
        """Subscription and status history, derived from the Stripe event ledger and the audit
        log (there is no history table): newest first."""
        rows = [HistoryRow(customer.created_at, "Portal", "Customer created")]
        for event in events:
            if not event.type.startswith("customer.subscription."):
                continue
            obj = (event.payload.get("data") or {}).get("object") or {}
            item = plan_item(self.catalog, obj)
            lookup = (item.get("price") or {}).get("lookup_key") if item else None
            found = self.catalog.plan_for_lookup_key(lookup) if lookup else None
            plan = f"{found[0].name} ({found[1].interval}ly)" if found else (lookup or "?")
            text = f"{event.type.removeprefix('customer.subscription.')}: {obj.get('status')}"
            text += f" on {plan}"
            if obj.get("cancel_at_period_end"):
                text += ", cancels at period end"
            rows.append(
                HistoryRow(datetime.fromtimestamp(event.stripe_created, tz=UTC), "Stripe", text)
            )
        for entry in audit:
            if entry.action in ("change_plan", "cancel", "resume"):
                rows.append(
                    HistoryRow(
                        entry.created_at,
                        f"Admin {entry.actor_email}",
                        f"{ACTIONS[entry.action]}: {entry.details.get('result', '')}",
                    )
                )
        return sorted(rows, key=lambda r: r.at, reverse=True)

    async def portal_view(self, external_id: str, actor: Actor) -> dict[str, Any] | None:
        """The customer's dashboard data, read-only; None unless this admin confirmed (and
        audited) opening it within `PORTAL_VIEW_WINDOW`."""
        customer = await self.customers.get(external_id)
        opened = await self.repo.last_audit(
            actor.user_id, "view_portal", "customer", customer.external_id
        )
        if opened is None or utcnow() - opened.created_at > PORTAL_VIEW_WINDOW:
            return None
        account = await self.pages.account(customer)
        rows, _page, _pages, invoice_count = await self.pages.invoices(customer, 1, per_page=5)
        return {
            "customer": customer,
            "account": account,
            "plan": account.plan,
            "subscription": account.subscription,
            "status": account.status,
            "meters": await self.pages.meters(customer, plan=account.plan),
            "chart": await self.pages.chart(customer),
            "invoices": rows,
            "invoice_count": invoice_count,
            "cards": await self.pages.cards(customer, account),
            "ledger": await self.pages.ledger(customer, limit=10),
            "opened": opened,
        }

    # Audit ---------------------------------------------------------------------------------

    async def _already_done(self, request_id: str) -> AuditLog | None:
        return await self.repo.audit_by_request_id(request_id)

    async def _audit(
        self,
        actor: Actor,
        action: str,
        target_type: str,
        target_id: str,
        reason: str,
        details: dict[str, Any],
        request_id: str | None,
    ) -> AuditLog:
        """Append one entry in a fresh transaction (the action's own work is committed)."""
        # End any read snapshot first (SQLite WAL: a transaction that read before another
        # connection's commit cannot write). commit(), not rollback(): nothing is expired.
        await self.session.commit()
        entry = AuditLog(
            actor_user_id=actor.user_id,
            actor_email=actor.email,
            action=action,
            target_type=target_type,
            target_id=target_id,
            reason=reason,
            details=json.loads(json.dumps(details, default=str)),
            request_id=request_id,
        )
        self.repo.add_audit(entry)
        try:
            await self.session.commit()
        except IntegrityError:  # the same form submitted twice at once: one entry
            await self.session.rollback()
            existing = await self.repo.audit_by_request_id(request_id or "")
            if existing is None:
                raise
            return existing
        return entry

    async def audit_log(self, q: str, action: str, page: Any) -> Page[AuditLog]:
        action = action if action in ACTIONS else ""
        q = (q or "").strip()[:200]
        total = await self.repo.count_audit(q, action)
        pages = page_count(total, PER_PAGE)
        number = clamp_page(page, pages)
        rows = await self.repo.audit(q, action, offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
        return Page(rows, number, pages, total)

    # Customer actions ----------------------------------------------------------------------

    def grant_summary(self, meter_code: str, amount: Any, expires_days: Any) -> dict[str, Any]:
        """Validate a grant's parameters (for the confirm page and the action)."""
        meter = self.catalog.meter(meter_code or "")
        if meter is None:
            raise ValidationFailed("Choose a meter.", field="meter")
        try:
            value = int(str(amount).strip())
        except (TypeError, ValueError):
            raise ValidationFailed("The amount must be a whole number.", field="amount") from None
        if not 1 <= value <= MAX_GRANT:
            raise ValidationFailed(f"The amount must be 1 to {MAX_GRANT:,}.", field="amount")
        days: int | None = None
        if str(expires_days or "").strip():
            try:
                days = int(str(expires_days).strip())
            except ValueError:
                raise ValidationFailed(
                    "Expiry must be a number of days.", field="expires"
                ) from None
            if not 1 <= days <= 3650:
                raise ValidationFailed("Expiry must be 1 to 3650 days.", field="expires")
        return {
            "meter": meter.code,
            "meter_name": meter.name,
            "amount": value,
            "expires_days": days,
        }

    async def grant_credits(
        self,
        actor: Actor,
        external_id: str,
        meter_code: str,
        amount: Any,
        expires_days: Any,
        reason: str | None,
        request_id: str | None,
    ) -> Outcome:
        summary = self.grant_summary(meter_code, amount, expires_days)
        why = _reason(reason)
        rid = _request_id(request_id)
        customer = await self.customers.get(external_id)
        done = await self._already_done(rid)
        if done is not None:
            return Outcome("This grant was already made.", "info", done)
        expires_at = (
            utcnow() + timedelta(days=summary["expires_days"]) if summary["expires_days"] else None
        )
        external, label = customer.external_id, customer.email or customer.external_id
        await self.session.commit()  # end this read snapshot; the writer has its own connection
        result = await self.metering.grant_credits(
            external,
            summary["meter"],
            summary["amount"],
            reason=why,
            transaction_id=f"admin_{rid}",
            expires_at=expires_at,
            source="admin",
        )
        entry = await self._audit(
            actor,
            "grant_credits",
            "customer",
            external,
            why,
            {
                "meter": summary["meter"],
                "amount": summary["amount"],
                "expires_at": expires_at.isoformat() if expires_at else None,
                "grant_id": result.public_id,
                "transaction_id": result.transaction_id,
            },
            rid,
        )
        return Outcome(
            f"Granted {summary['amount']:,} {summary['meter_name']} credits to {label}.",
            entry=entry,
        )

    def plan_choices(self) -> list[Plan]:
        return list(self.catalog.plans.values())

    async def change_plan_summary(
        self, external_id: str, plan_slug: str, interval: str
    ) -> dict[str, Any]:
        customer = await self.customers.get(external_id)
        subscription = await self.customers.subscription(customer)
        plan = self.catalog.plan(plan_slug or "")
        if plan is None:
            raise ValidationFailed(f"Unknown plan {quoted(plan_slug)}.", field="plan")
        interval = "year" if interval == "year" else "month"
        if plan.price(interval) is None:  # type: ignore[arg-type]
            raise ValidationFailed(f"{plan.name} has no {interval}ly price.", field="interval")
        through_stripe = bool(
            subscription.stripe_subscription_id and subscription.status in LIVE_STATUSES
        )
        if through_stripe:
            how = "Through Stripe: the current paid subscription is " + (
                "canceled at the end of its period."
                if plan.is_free
                else "switched now, and the difference is prorated and invoiced."
            )
        else:
            how = "No Stripe subscription: the plan is set directly, without a charge" + (
                " (complimentary)." if not plan.is_free else "."
            )
        return {
            "customer": customer,
            "subscription": subscription,
            "plan": plan,
            "interval": interval,
            "through_stripe": through_stripe,
            "how": how,
        }

    async def change_plan(
        self,
        actor: Actor,
        external_id: str,
        plan_slug: str,
        interval: str,
        reason: str | None,
        request_id: str | None,
    ) -> Outcome:
        why = _reason(reason)
        rid = _request_id(request_id)
        summary = await self.change_plan_summary(external_id, plan_slug, interval)
        done = await self._already_done(rid)
        if done is not None:
            return Outcome("This plan change was already made.", "info", done)
        customer: Customer = summary["customer"]
        before = summary["subscription"]
        details: dict[str, Any] = {
            "from_plan": before.plan_slug,
            "from_interval": before.interval,
            "to_plan": summary["plan"].slug,
            "to_interval": summary["interval"],
            "through_stripe": summary["through_stripe"],
        }
        if summary["through_stripe"]:
            result = await self.billing.change_plan(
                customer, summary["plan"].slug, summary["interval"]
            )
            message, category = result.message, result.category
        else:
            await self.customers.upsert(
                CustomerInput(external_id=customer.external_id, plan=summary["plan"].slug)
            )
            message, category = f"Now on {summary['plan'].name} (set directly).", "success"
        details["result"] = message
        entry = await self._audit(
            actor, "change_plan", "customer", customer.external_id, why, details, rid
        )
        return Outcome(message, "success" if category == "info" else category, entry)

    async def cancel_or_resume(
        self,
        actor: Actor,
        action: str,
        external_id: str,
        reason: str | None,
        request_id: str | None,
    ) -> Outcome:
        assert action in ("cancel", "resume")
        why = _reason(reason)
        rid = _request_id(request_id)
        customer = await self.customers.get(external_id)
        done = await self._already_done(rid)
        if done is not None:
            return Outcome("This was already done.", "info", done)
        if action == "cancel":
            result = await self.billing.cancel(customer)
        else:
            result = await self.billing.resume(customer)
        entry = await self._audit(
            actor,
            action,
            "customer",
            customer.external_id,
            why,
            {"result": result.message, "outcome": result.category},
            rid,
        )
        return Outcome(result.message, result.category, entry)

    async def open_portal_view(
        self, actor: Actor, external_id: str, reason: str | None, request_id: str | None
    ) -> Outcome:
        why = _reason(reason)
        rid = _request_id(request_id)
        customer = await self.customers.get(external_id)
        entry = await self._audit(
            actor,
            "view_portal",
            "customer",
            customer.external_id,
            why,
            {"read_only": True, "minutes": int(PORTAL_VIEW_WINDOW.total_seconds() // 60)},
            rid,
        )
        return Outcome("Opened the read-only view.", entry=entry)

    # API keys ------------------------------------------------------------------------------

    async def list_api_keys(self) -> list[ApiKey]:
        return await self.api_keys.list()

    async def create_api_key(
        self, actor: Actor, name: str, reason: str | None, request_id: str | None
    ) -> tuple[ApiKey | None, str | None, Outcome]:
        """The raw key is returned once, for the response page; it is never stored or logged."""
        why = _reason(reason)
        rid = _request_id(request_id)
        done = await self._already_done(rid)
        if done is not None:
            return None, None, Outcome("This key was already created.", "info", done)
        key, raw = await self.api_keys.create(name)
        entry = await self._audit(
            actor,
            "api_key.create",
            "api_key",
            str(key.id),
            why,
            {"name": key.name, "prefix": key.prefix},
            rid,
        )
        return key, raw, Outcome(f"API key “{key.name}” created.", entry=entry)

    async def api_key(self, key_id: int) -> ApiKey:
        for key in await self.api_keys.list():
            if key.id == key_id:
                return key
        raise NotFound("No such API key.")

    async def revoke_api_key(
        self, actor: Actor, key_id: int, reason: str | None, request_id: str | None
    ) -> Outcome:
        why = _reason(reason)
        rid = _request_id(request_id)
        done = await self._already_done(rid)
        if done is not None:
            return Outcome("This key was already revoked.", "info", done)
        key = await self.api_keys.revoke(key_id)
        entry = await self._audit(
            actor,
            "api_key.revoke",
            "api_key",
            str(key.id),
            why,
            {"name": key.name, "prefix": key.prefix},
            rid,
        )
        return Outcome(f"API key “{key.name}” revoked.", entry=entry)

    # Stripe events -------------------------------------------------------------------------

    async def stripe_events(self, status: str, type_prefix: str, page: Any) -> Page[StripeEvent]:
        status = status if status in EVENT_STATUSES else ""
        type_prefix = (type_prefix or "").strip()[:100]
        total = await self.repo.count_events(status, type_prefix)
        pages = page_count(total, PER_PAGE)
        number = clamp_page(page, pages)
        rows = await self.repo.events(
            status, type_prefix, offset=(number - 1) * PER_PAGE, limit=PER_PAGE
        )
        return Page(rows, number, pages, total)

    async def stripe_event(self, stripe_event_id: str) -> tuple[StripeEvent, Customer | None]:
        event = await self.repo.event(stripe_event_id)
        if event is None:
            raise NotFound(f"No Stripe event {stripe_event_id!r}.", code="event_not_found")
        customer = None
        if event.stripe_customer_id:
            customer = await self.repo.customer_by_stripe_id(event.stripe_customer_id)
        return event, customer

    async def replay_event(
        self, actor: Actor, stripe_event_id: str, reason: str | None, request_id: str | None
    ) -> Outcome:
        why = _reason(reason)
        rid = _request_id(request_id)
        event, _customer = await self.stripe_event(stripe_event_id)
        done = await self._already_done(rid)
        if done is not None:
            return Outcome("This replay already ran.", "info", done)
        before = event.status
        row = await self.events.replay(stripe_event_id)
        entry = await self._audit(
            actor,
            "stripe_event.replay",
            "stripe_event",
            stripe_event_id,
            why,
            {"type": row.type, "before": before, "after": row.status, "error": row.last_error},
            rid,
        )
        category = "success" if row.status in ("processed", "ignored") else "error"
        return Outcome(f"Replayed {stripe_event_id}: {row.status}.", category, entry)

    # Invoices ------------------------------------------------------------------------------

    async def invoices(self, status: str, page: Any) -> tuple[Page[Any], list[Any]]:
        status = status if status in INVOICE_STATUSES else ""
        totals = await self.repo.invoice_totals(status)
        total = sum(n for _, n, _, _ in totals)
        pages = page_count(total, PER_PAGE)
        number = clamp_page(page, pages)
        rows = await self.repo.invoices(status, offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
        return Page(rows, number, pages, total), totals
