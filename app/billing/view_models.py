"""What the customer's billing pages show: one frozen record per page part (meters, status,
usage chart, plan cards, ledger, invoices, cards), built by `BillingPages` in views.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from app.billing.models import Invoice, PaymentMethod
from app.catalog.models import CreditPack, Feature, Interval, Plan
from app.customers.models import Customer, Subscription
from app.lib.charts import Chart
from app.lib.money import format_money


@dataclass(frozen=True)
class MeterView:
    code: str
    name: str
    unit: str
    limit: int | None
    used: int  # of the included quota (what the bar shows)
    total_used: int  # including what credits paid for
    credits: int
    credits_used: int
    held: int
    available: int | None
    percentage: float | None
    percentage_text: str
    width: float
    level: str
    level_text: str
    unlimited: bool
    exhausted: bool
    prompt: bool
    reset: str
    reset_at: datetime | None
    credit_pack: CreditPack | None
    upgrade_plan: Plan | None

    @property
    def reset_text(self) -> str:
        if self.reset == "never":
            return "This is a one-time allowance; it does not reset."
        if self.reset == "day":
            when = f" ({self.reset_at:%b %-d})" if self.reset_at else ""
            return f"Resets daily at 00:00 UTC{when}."
        if self.reset_at is not None:
            return f"Resets on {self.reset_at:%b %-d, %Y}."
        return ""

    @property
    def upgrade_text(self) -> str:
        """What the suggested plan includes of this meter, e.g. "Pro includes 1,000 a month"."""
        plan = self.upgrade_plan
        quota = plan.quotas.get(self.code) if plan else None
        if plan is None or quota is None:
            return ""
        if quota.included is None:
            return f"{plan.name} includes unlimited {self.name}."
        per = {"day": " a day", "never": " in total"}.get(quota.reset, " a month")
        return f"{plan.name} includes {quota.included:,} {self.name}{per}."

    @property
    def period_word(self) -> str:
        return {"day": "today", "never": "in total"}.get(self.reset, "this period")


@dataclass(frozen=True)
class MetersView:
    meters: list[MeterView]
    version: str
    demo: bool
    notice: str | None = None  # the demo's "Try it" result, shown under its button
    notice_kind: str = "success"
    try_meter: MeterView | None = None  # the meter the demo's fake request uses

    @property
    def prompted(self) -> list[MeterView]:
        return [m for m in self.meters if m.prompt and not m.exhausted]

    @property
    def exhausted(self) -> list[MeterView]:
        return [m for m in self.meters if m.exhausted]


@dataclass(frozen=True)
class StatusView:
    """The plan card's one state (app/billing/plan_state.py): a badge and one sentence."""

    status: str
    label: str
    badge: str
    kind: str = ""
    line: str = ""
    days_left: int | None = None
    trial_end: datetime | None = None
    cancel_on: datetime | None = None
    payment_problem: bool = False


@dataclass(frozen=True)
class ChartView:
    """The usage charts: one per meter, each over the period its quota resets on. `start` and
    `end`: the current billing period's first and last day."""

    start: date
    end: date
    series: list[Chart]


@dataclass(frozen=True)
class PlanCard:
    plan: Plan
    current: bool
    price: int | None
    currency: str
    interval: Interval
    monthly_equivalent: int | None
    savings: int
    quotas: list[tuple[str, str]]
    checkout: bool
    action: str
    ends_trial: bool = False  # choosing it ends the customer's trial and charges now
    trial_days: int = 0  # the free trial Checkout gives this customer on this plan (0: none)


@dataclass(frozen=True)
class FeatureRow:
    feature: Feature
    included: list[bool]  # per plan, in the comparison's order


@dataclass(frozen=True)
class FeatureComparison:
    """The plans x features table of the dashboard and the plans page."""

    plans: list[Plan]
    rows: list[FeatureRow]
    current: str | None  # the customer's plan slug, marked in the table


@dataclass(frozen=True)
class LedgerRow:
    at: datetime
    meter: str
    kind: str
    label: str
    amount: int
    expires_at: datetime | None
    reason: str
    # A bought pack's grant: its Checkout Session (cs_...), the payment an admin may refund.
    payment_id: str | None = None


@dataclass(frozen=True)
class InvoiceRow:
    """One invoice in a list: what it is for, its amount with cents, and its status in words
    (a $0 trial invoice is "Trial — $0.00", a negative one a credit, not "Paid")."""

    invoice: Invoice
    status_label: str
    status_badge: str
    description: str = ""
    amount_text: str = ""
    status_hint: str = ""


@dataclass(frozen=True)
class InvoiceLineView:
    description: str
    detail: str  # Stripe's own wording when our label says it differently, else ""
    amount_text: str
    period: str
    proration: bool
    quantity: int | None


@dataclass(frozen=True)
class InvoiceDetail:
    """An invoice as its own page shows it: lines, the sums down to what was paid, the card."""

    row: InvoiceRow
    lines: list[InvoiceLineView]
    totals: list[tuple[str, str]]  # (label, amount) down to the total
    settlement: list[tuple[str, str]]  # balance applied, amount due, paid, refunded, credited
    payment: str | None  # "Visa ending in 4242"

    @property
    def invoice(self) -> Invoice:
        return self.row.invoice


@dataclass(frozen=True)
class CreditBalance:
    """The customer's Stripe balance: negative is credit for the next invoices."""

    amount: int  # minor units, Stripe's sign
    currency: str

    @property
    def is_credit(self) -> bool:
        return self.amount < 0

    @property
    def amount_text(self) -> str:
        """ "$120.00 credit" or "$12.00 owed"."""
        shown = format_money(abs(self.amount), self.currency, cents=True)
        return f"{shown} credit" if self.is_credit else f"{shown} owed"

    @property
    def text(self) -> str:
        shown = format_money(abs(self.amount), self.currency, cents=True)
        if self.amount < 0:
            return f"{shown} credit, applied to your next invoices"
        return f"{shown} owed, added to your next invoice"


@dataclass(frozen=True)
class CardRow:
    card: PaymentMethod
    expired: bool
    can_remove: bool


@dataclass(frozen=True)
class ScheduledView:
    """A plan change Stripe makes later (a downgrade at the period end); `plan` is None for
    a schedule made outside the portal."""

    plan: Plan | None
    at: datetime


@dataclass(frozen=True)
class PaymentActionView:
    """An open invoice whose payment waits for the customer's bank (3-D Secure): the
    banner on every billing page links to Stripe's page where they confirm it."""

    amount: int
    currency: str
    url: str


@dataclass(frozen=True)
class PendingChangeView:
    """A plan change Stripe holds until its invoice is paid (`pending_update`); `plan` is
    None for one made outside the portal, `url` the invoice's hosted page."""

    plan: Plan | None
    expires_at: datetime | None
    url: str | None


@dataclass
class Account:
    customer: Customer
    subscription: Subscription
    plan: Plan
    status: StatusView
    renews_on: datetime | None
    paid: bool
    scheduled: ScheduledView | None = None
    payment_actions: list[PaymentActionView] = field(default_factory=list)
    pending: PendingChangeView | None = None

    @property
    def credit_balance(self) -> CreditBalance | None:
        """The Stripe balance when there is one (None at zero)."""
        amount = self.customer.stripe_balance or 0
        if not amount:
            return None
        return CreditBalance(
            amount, self.customer.stripe_balance_currency or self.customer.currency
        )

    @property
    def cancellable(self) -> bool:
        """A paid Stripe subscription not yet set to end: what "Cancel plan" acts on."""
        return (
            self.paid
            and self.subscription.stripe_subscription_id is not None
            and not self.subscription.cancel_at_period_end
        )


@dataclass(frozen=True)
class Cancellation:
    """What canceling does: the plan stays until the period ends, then the free plan applies."""

    plan: Plan
    ends_on: datetime | None
    trial: bool
    free_plan: Plan
    free_limits: list[tuple[str, str]]


@dataclass(frozen=True)
class CardRemoval:
    """One card about to be removed, and how many stay on file after it."""

    row: CardRow
    others: int
