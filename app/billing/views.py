"""The customer's billing pages' view models (app/billing/view_models.py), built from the
services (no HTTP here).

Controllers find the logged-in user's customer with `customer_for_user` (every page is scoped to
it, so no page takes a customer id) and render what these methods return.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.invoice_views import invoice_detail, invoice_row
from app.billing.models import PaymentMethod
from app.billing.plan_state import plan_state
from app.billing.repository import BillingRepository
from app.billing.rules import (
    bar_width,
    can_remove_card,
    change_ends_trial,
    clamp_page,
    display_percentage,
    page_count,
    plan_is_paid,
    trial_eligible,
)
from app.billing.summary import BillingSummary, billing_summary
from app.billing.usage_chart import chart_span, meter_chart
from app.billing.view_models import (
    Account,
    Cancellation,
    CardRemoval,
    CardRow,
    ChartView,
    FeatureComparison,
    FeatureRow,
    InvoiceDetail,
    InvoiceRow,
    LedgerRow,
    MetersView,
    MeterView,
    PaymentActionView,
    PendingChangeView,
    PlanCard,
    ScheduledView,
)
from app.catalog.models import Catalog, CreditPack, Interval, Plan, Quota
from app.customers.models import Customer, Subscription
from app.customers.service import CustomerService
from app.lib.clock import add_months, as_utc, start_of_month, utcnow
from app.lib.errors import InsufficientBalance, NotFound
from app.lib.money import format_money, per_month
from app.metering.balance import BillingCycle, current_period
from app.metering.models import CreditGrant, CreditLedgerEntry
from app.metering.ops import REVOCATION_KINDS
from app.metering.service import Balance, EventInput, MeteringService

TRY_METER = "ai_requests"
INVOICES_PER_PAGE = 20
LEVEL_TEXT = {"neutral": "", "warning": "Running low", "danger": "Almost used up"}
STATUS_LABELS = {
    "active": "Active",
    "trialing": "Trial",
    "past_due": "Payment failed",
    "unpaid": "Unpaid",
    "canceled": "Canceled",
    "incomplete": "Payment pending",
    "incomplete_expired": "Expired",
    "paused": "Paused",
}
LEDGER_KINDS = {
    ("grant", "purchase"): "Purchased",
    ("grant", "admin"): "Granted by support",
    ("grant", "promotion"): "Promotion",
    ("grant", "api"): "Granted",
    ("grant", "guest"): "Carried over from your guest use",
    ("consume", None): "Used",
    ("expire", None): "Expired",
    ("transfer", None): "Moved to your account",
    ("refund", None): "Revoked: payment refunded",
    ("dispute", None): "Revoked: payment disputed",
    ("restore", None): "Restored: dispute won",
}
# Ledger kinds that add credits (the others take them).
_ADDING_KINDS = ("grant", "restore")


# --- the service -----------------------------------------------------------------------------


class BillingPages:
    def __init__(
        self,
        session: AsyncSession,
        catalog: Catalog,
        customers: CustomerService,
        metering: MeteringService,
        *,
        demo_mode: bool = False,
    ) -> None:
        self.session = session
        self.catalog = catalog
        self.customers = customers
        self.metering = metering
        self.demo_mode = demo_mode
        self.repo = BillingRepository(session)

    async def customer_for_user(self, user_id: int) -> Customer:
        customer = await self.customers.for_user(user_id)
        if customer is None:
            raise NotFound("No billing account is linked to this login.", code="no_customer")
        return customer

    async def account(self, customer: Customer, now: datetime | None = None) -> Account:
        now = now or utcnow()
        subscription = await self.customers.subscription(customer)
        plan = self.catalog.plan(subscription.plan_slug) or self.catalog.default_plan
        actions, pending = await self._payment_actions(customer, subscription)
        scheduled = self._scheduled_change(subscription)
        return Account(
            customer=customer,
            subscription=subscription,
            plan=plan,
            scheduled=scheduled,
            status=plan_state(
                subscription,
                plan,
                now,
                free_plan_name=self.catalog.default_plan.name,
                awaiting_bank=bool(actions),
                scheduled_plan_name=None
                if scheduled is None
                else (scheduled.plan.name if scheduled.plan else ""),
            ),
            renews_on=None
            if subscription.cancel_at_period_end
            else subscription.current_period_end,
            paid=plan_is_paid(plan.is_free, subscription.status),
            payment_actions=actions,
            pending=pending,
        )

    async def _payment_actions(
        self, customer: Customer, subscription: Subscription
    ) -> tuple[list[PaymentActionView], PendingChangeView | None]:
        """Payments waiting for the customer's bank, and a plan change waiting for one."""
        invoices = await self.repo.awaiting_action(customer.id)
        actions = [
            PaymentActionView(i.amount_due, i.currency, i.hosted_invoice_url)
            for i in invoices
            if i.hosted_invoice_url
        ]
        pending = None
        if subscription.pending_invoice_id is not None:
            url = next(
                (
                    i.hosted_invoice_url
                    for i in invoices
                    if i.stripe_invoice_id == subscription.pending_invoice_id
                ),
                None,
            )
            pending = PendingChangeView(
                plan=self.catalog.plan(subscription.pending_plan_slug or ""),
                expires_at=subscription.pending_expires_at,
                url=url,
            )
        return actions, pending

    def _scheduled_change(self, subscription: Subscription) -> ScheduledView | None:
        """The plan change Stripe makes at the period end (a downgrade), if one is scheduled."""
        if subscription.stripe_schedule_id is None or subscription.scheduled_change_at is None:
            return None
        plan = self.catalog.plan(subscription.scheduled_plan_slug or "")
        return ScheduledView(plan=plan, at=subscription.scheduled_change_at)

    # Meters, chart, Try it -------------------------------------------------------------

    async def meters(
        self,
        customer: Customer,
        now: datetime | None = None,
        *,
        notice: str | None = None,
        notice_kind: str = "success",
        plan: Plan | None = None,
        subscription: Subscription | None = None,
    ) -> MetersView:
        """`subscription`: the customer's as read in this request, with `plan` (the balance
        cache's sheet, when read as of now with the same terms, may then serve)."""
        asked, now = now, now or utcnow()
        if plan is None:
            plan, subscription = (await self.account(customer, now)).plan, None
        balances = None
        if subscription is not None and asked is None:
            balances = self.metering.cached_balances_for(customer, subscription)
        if balances is None:
            balances = await self.metering.balances_for(customer, asked)
        views = [self._meter_view(balance, plan) for balance in balances]
        return MetersView(
            meters=views,
            version=meters_version(plan.slug, balances, now),
            demo=self.demo_mode,
            notice=notice,
            notice_kind=notice_kind,
            try_meter=next((view for view in views if view.code == TRY_METER), None),
        )

    def _meter_view(self, balance: Balance, plan: Plan) -> MeterView:
        unlimited = balance.unlimited
        pct = balance.percentage
        return MeterView(
            code=balance.code,
            name=balance.name,
            unit=balance.unit,
            limit=balance.limit,
            used=balance.included_used if not unlimited else balance.used,
            total_used=balance.used,
            credits=balance.credits,
            credits_used=balance.credits_used,
            held=balance.held,
            available=balance.available,
            percentage=pct,
            percentage_text=display_percentage(pct),
            width=bar_width(pct),
            level=balance.level,
            level_text="Used up" if balance.exhausted else LEVEL_TEXT[balance.level],
            unlimited=unlimited,
            exhausted=balance.exhausted,
            prompt=balance.prompt_upgrade,
            reset=balance.reset,
            reset_at=balance.period_end,
            credit_pack=self._pack_for(balance.code),
            upgrade_plan=self._upgrade_for(plan, balance.code),
        )

    def _pack_for(self, meter_code: str) -> CreditPack | None:
        packs = [p for p in self.catalog.credit_packs.values() if p.meter_code == meter_code]
        return min(packs, key=lambda p: p.amount) if packs else None

    def _upgrade_for(self, current: Plan, meter_code: str) -> Plan | None:
        """The cheapest public paid plan that includes more of this meter than the current one."""
        have = current.quotas[meter_code].included if meter_code in current.quotas else 0

        def more(plan: Plan) -> bool:
            quota = plan.quotas.get(meter_code)
            if quota is None or plan.slug == current.slug or plan.is_free:
                return False
            return have is not None and (quota.included is None or quota.included > have)

        candidates = [plan for plan in self.catalog.public_plans() if more(plan)]
        return min(candidates, key=_monthly_amount) if candidates else None

    async def chart(
        self,
        customer: Customer,
        now: datetime | None = None,
        *,
        subscription: Subscription | None = None,
    ) -> ChartView:
        """`subscription`: the customer's, when the caller has it already (one query less)."""
        now = now or utcnow()
        if subscription is None:
            subscription = await self.customers.subscription(customer)
        # The billing-period quotas' current window, as the meters count it (a yearly plan's
        # quota comes monthly); the download's default range stays the billing period.
        start, end = _quota_window(subscription, now)
        billing_start, billing_end = _billing_period(subscription, now)
        plan = self.catalog.plan(subscription.plan_slug) or self.catalog.default_plan
        today = now.date()
        period_first, period_last = start.date(), (end - timedelta(microseconds=1)).date()
        spans = {
            code: chart_span(
                plan.quotas[code].reset if code in plan.quotas else "billing_period",
                period_first,
                period_last,
                today,
            )
            for code in self.catalog.meters
        }
        # The billing period's days from its exact start (usage earlier on its first day
        # belongs to the previous period); the other spans (a daily quota's last 7 days) by
        # whole days, in a second query only when a meter needs one.
        period_first_shown = min(
            (s.first for s in spans.values() if s.kind == "billing_period"), default=period_first
        )
        period_totals = await self.repo.daily_usage(
            customer.id, max(start, _midnight(period_first_shown)), end
        )
        others = [s for s in spans.values() if s.kind != "billing_period"]
        other_totals: dict[tuple[str, date], int] = {}
        if others:
            other_totals = await self.repo.daily_usage(
                customer.id,
                _midnight(min(s.first for s in others)),
                _midnight(today) + timedelta(days=1),
            )
        series = []
        for code, meter in self.catalog.meters.items():
            span = spans[code]
            totals = period_totals if span.kind == "billing_period" else other_totals
            days = {day: n for (c, day), n in totals.items() if c == code}
            series.append(meter_chart(meter, plan.quotas.get(code), span, days, today))
        return ChartView(
            start=billing_start.date(),
            end=(billing_end - timedelta(microseconds=1)).date(),
            series=series,
        )

    async def try_it(self, customer: Customer) -> tuple[bool, str]:
        """Run the demo's fake AI request: one `ai_requests` event, recorded server-side."""
        if self.catalog.meter(TRY_METER) is None:
            raise NotFound("The demo meter is not in the catalog.", code="meter_not_found")
        if await run_fake_request(self.metering, customer.external_id):
            ok, message = True, f"The fake AI answered: “{fake_answer()}” (1 AI request used)."
        else:
            ok, message = False, "That request did not run: your AI requests are used up."
        # The write committed on the writer's own connection: end this session's read snapshot
        # (SQLite WAL) so the balances read next include it.
        await self.session.commit()
        return ok, message

    # Other pages -------------------------------------------------------------------------

    def plan_cards(self, account: Account, interval: Interval) -> list[PlanCard]:
        # Checkout's own rule (BillingService._plan_checkout): a trial only for a customer
        # who never had a subscription, so no card promises one Checkout will not give.
        eligible = trial_eligible(account.subscription)
        cards = []
        for plan in self.catalog.public_plans():
            price = plan.price(interval) or plan.price("month")
            shown: Interval = price.interval if price is not None else "month"
            is_current = plan.slug == account.plan.slug
            same_terms = is_current and (plan.is_free or account.subscription.interval == shown)
            cards.append(
                PlanCard(
                    plan=plan,
                    current=is_current,
                    price=price.amount if price else None,
                    currency=price.currency if price else account.customer.currency,
                    interval=shown,
                    monthly_equivalent=per_month(price.amount)
                    if price and shown == "year"
                    else None,
                    savings=plan.yearly_savings(),
                    quotas=self._quota_lines(plan, shown),
                    checkout=price is not None and not plan.is_free and not same_terms,
                    action=_plan_action(plan, account.plan, is_current, shown, eligible),
                    trial_days=plan.trial_days if eligible and not plan.is_free else 0,
                    ends_trial=not plan.is_free
                    and change_ends_trial(account.subscription.status, is_current, plan.trial_days),
                )
            )
        return cards

    def _quota_lines(self, plan: Plan, interval: Interval) -> list[tuple[str, str]]:
        per = {
            "day": " a day",
            # Quotas reset monthly on yearly plans too (app.metering.balance.current_period).
            "billing_period": " a month",
            "never": " in total",
        }
        lines = []
        for code, meter in self.catalog.meters.items():
            quota = plan.quotas.get(code)
            if quota is None:
                continue
            text = (
                "Unlimited" if quota.included is None else f"{quota.included:,}{per[quota.reset]}"
            )
            if quota.overage_unit_amount:
                price = next(iter(plan.prices.values()))
                each = format_money(quota.overage_unit_amount, price.currency)
                text += f", then {each} per {meter.unit}"
            lines.append((meter.name, text))
        return lines

    def quota_changes(self, current: Plan, target: Plan) -> list[tuple[str, str, str]]:
        """What a plan change does to each quota: (meter, now, after)."""
        before = dict(self._quota_lines(current, "month"))
        after = dict(self._quota_lines(target, "month"))
        return [
            (name, before.get(name, "None"), after.get(name, "None"))
            for name in dict.fromkeys([*before, *after])
        ]

    def max_savings_percent(self) -> int:
        best = 0
        for plan in self.catalog.public_plans():
            monthly = plan.price("month")
            if plan.yearly_savings() and monthly and monthly.amount:
                best = max(best, round(plan.yearly_savings() * 100 / (monthly.amount * 12)))
        return best

    def feature_comparison(self, current: Plan | None = None) -> FeatureComparison | None:
        """The public plans' features side by side (None when the catalog declares none)."""
        if not self.catalog.features:
            return None
        plans = self.catalog.public_plans()
        rows = [
            FeatureRow(feature, [plan.has_feature(code) for plan in plans])
            for code, feature in self.catalog.features.items()
        ]
        return FeatureComparison(plans, rows, current.slug if current else None)

    async def summary(self, customer: Customer) -> BillingSummary:
        """`GET /billing/summary.json`: from the database (and the balance cache) only."""
        subscription = await self.customers.subscription(customer)
        balances = self.metering.cached_balances_for(customer, subscription)
        if balances is None:
            balances = await self.metering.balances_for(customer)
        return billing_summary(self.catalog, customer, subscription, balances)

    def credit_packs(self) -> list[CreditPack]:
        return sorted(self.catalog.credit_packs.values(), key=lambda p: (p.meter_code, p.amount))

    async def ledger(self, customer: Customer, limit: int = 50) -> list[LedgerRow]:
        rows = await self.metering.credit_ledger(customer.id, limit=limit)
        return [self._ledger_row(entry, grant) for entry, grant in rows]

    def _ledger_row(self, entry: CreditLedgerEntry, grant: CreditGrant) -> LedgerRow:
        source = grant.source if entry.kind == "grant" else None
        meter = self.catalog.meter(entry.meter_code)
        sign = 1 if entry.kind in _ADDING_KINDS else -1
        return LedgerRow(
            at=entry.created_at,
            meter=meter.name if meter else entry.meter_code,
            kind=entry.kind,
            label=LEDGER_KINDS.get((entry.kind, source), entry.kind.capitalize()),
            amount=sign * abs(entry.amount),
            expires_at=grant.expires_at if entry.kind == "grant" else None,
            reason=grant.reason if entry.kind in (*_ADDING_KINDS, *REVOCATION_KINDS) else "",
            payment_id=grant.transaction_id
            if source == "purchase" and grant.transaction_id.startswith("cs_")
            else None,
        )

    async def invoices(
        self, customer: Customer, page: str | int | None, per_page: int = INVOICES_PER_PAGE
    ) -> tuple[list[InvoiceRow], int, int, int]:
        """(rows, page, pages, total)."""
        total = await self.repo.count_listed_invoices(customer.id)
        pages = page_count(total, per_page)
        number = clamp_page(page, pages)
        invoices = await self.repo.invoices(
            customer.id, offset=(number - 1) * per_page, limit=per_page
        )
        return [invoice_row(inv) for inv in invoices], number, pages, total

    async def latest_invoices(self, customer: Customer, count: int) -> tuple[list[InvoiceRow], int]:
        """The dashboard's newest `count` invoices and how many there are (one statement)."""
        invoices, total = await self.repo.latest_invoices(customer.id, count)
        return [invoice_row(inv) for inv in invoices], total

    async def invoice(self, customer: Customer, stripe_invoice_id: str) -> InvoiceDetail:
        """One of the customer's invoices; NotFound for any other (another customer's too)."""
        inv = await self.repo.customer_invoice(customer.id, stripe_invoice_id)
        if inv is None:
            raise NotFound("No such invoice on your account.", code="invoice_not_found")
        return invoice_detail(inv)

    async def cards(
        self, customer: Customer, account: Account, now: datetime | None = None
    ) -> list[CardRow]:
        now = now or utcnow()
        cards = await self.repo.payment_methods(customer.id)
        removable = can_remove_card(len(cards), account.paid)
        return [CardRow(card, _card_expired(card, now), removable) for card in cards]

    async def card_removal(
        self, customer: Customer, account: Account, payment_method_id: str
    ) -> CardRemoval:
        """One of the customer's cards as the list shows it; NotFound for any other id."""
        rows = await self.cards(customer, account)
        for row in rows:
            if row.card.stripe_payment_method_id == payment_method_id:
                return CardRemoval(row=row, others=len(rows) - 1)
        raise NotFound("No such payment method on your account.")

    def cancellation(self, account: Account) -> Cancellation | None:
        """What "Cancel plan" would do; None when there is nothing to cancel."""
        if not account.cancellable:
            return None
        free = self.catalog.default_plan
        return Cancellation(
            plan=account.plan,
            ends_on=account.subscription.current_period_end,
            trial=account.status.status == "trialing",
            free_plan=free,
            free_limits=self._quota_lines(free, "month"),
        )


# --- helpers ---------------------------------------------------------------------------------


def _quota_window(subscription: Subscription, now: datetime) -> tuple[datetime, datetime]:
    """The current window of a `billing_period` quota (app/metering/balance.py), as the
    meters show it: the Stripe period, a month of a yearly one, or the calendar month."""
    cycle = None
    start, end = subscription.current_period_start, subscription.current_period_end
    if start is not None and end is not None:
        cycle = BillingCycle(start=as_utc(start), end=as_utc(end), interval=subscription.interval)
    period = current_period(Quota("", None, "billing_period"), now, cycle)
    assert period.end is not None  # only a `never` quota has no end
    return period.start, period.end


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _billing_period(subscription: Subscription, now: datetime) -> tuple[datetime, datetime]:
    start, end = subscription.current_period_start, subscription.current_period_end
    if start is not None and end is not None and start <= now < end:
        return start, end
    month = start_of_month(now)
    return month, add_months(month, 1)


def _plan_action(
    plan: Plan, current: Plan, is_current: bool, interval: Interval, trial_eligible: bool
) -> str:
    if is_current:
        return f"Switch to {'yearly' if interval == 'year' else 'monthly'} billing"
    if _monthly_amount(plan) > _monthly_amount(current):
        if plan.trial_days and current.is_free and trial_eligible:
            return f"Start {plan.trial_days}-day free trial"
        return f"Upgrade to {plan.name}"
    return f"Switch to {plan.name}"


def _monthly_amount(plan: Plan) -> int:
    price = plan.price("month") or plan.price("year")
    if price is None:
        return 0
    return price.amount if price.interval == "month" else per_month(price.amount)


def meters_version(plan_slug: str, balances: list[Balance], now: datetime) -> str:
    """What the meters partial shows, in 16 hex digits: the live-usage poll's `v`."""
    parts = [plan_slug, now.strftime("%Y-%m-%d")]
    for b in balances:
        parts.append(f"{b.code}:{b.limit}:{b.used}:{b.credits}:{b.credits_used}:{b.held}")
        parts.append(str(b.period_end))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _card_expired(card: PaymentMethod, now: datetime) -> bool:
    if not card.exp_year or not card.exp_month:
        return False
    return (card.exp_year, card.exp_month) < (now.year, now.month)


_ANSWERS = (
    "Your invoices are in order.",
    "The best time to upgrade was yesterday; the second best is now.",
    "42 AI requests walk into a bar. The bar fills up.",
    "I counted that request exactly once.",
)


async def run_fake_request(metering: MeteringService, external_id: str) -> bool:
    """The demo's fake AI request: one `ai_requests` event, recorded server-side (committed on
    the writer's connection). False when the balance refused it."""
    try:
        await metering.record(
            EventInput(
                transaction_id=f"try_{uuid.uuid4().hex}",
                code=TRY_METER,
                external_customer_id=external_id,
            )
        )
    except InsufficientBalance:
        return False
    return True


def fake_answer() -> str:
    return _ANSWERS[uuid.uuid4().int % len(_ANSWERS)]
