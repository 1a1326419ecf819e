"""The JSON of the customer's billing pages: `GET /billing/summary.json`."""

from __future__ import annotations

from datetime import UTC, datetime

from msgspec import Struct

from app.billing.summary import BillingSummary
from app.lib.clock import as_utc
from app.metering.schemas import BalanceOut, PlanRef, balance_out


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


class NextInvoiceOut(Struct):
    """The plan's price at the next renewal (or trial end): overage, tax, discounts and the
    account's Stripe balance are added by Stripe and not included."""

    amount: int
    currency: str
    date: str
    plan: PlanRef
    interval: str


class BillingSummaryOut(Struct):
    """The signed-in customer's billing, for the SaaS's own frontend. `plan` is the
    subscription's; `features` and `balances` follow the plan in force (`plan_in_force`:
    the free plan's while the subscription is paused). `next_invoice` is null when nothing
    is due (a free plan, a subscription set to cancel, or not live)."""

    external_customer_id: str
    plan: PlanRef
    plan_in_force: str
    status: str
    interval: str
    trial_end: str | None
    current_period_start: str | None
    current_period_end: str | None
    cancel_at_period_end: bool
    features: dict[str, bool]
    balances: list[BalanceOut]
    next_invoice: NextInvoiceOut | None
    upgrade_url: str


def summary_out(summary: BillingSummary, upgrade_url: str) -> BillingSummaryOut:
    sub, nxt = summary.subscription, summary.next_invoice
    return BillingSummaryOut(
        external_customer_id=summary.customer.external_id,
        plan=PlanRef(summary.plan.slug, summary.plan.name),
        plan_in_force=summary.plan_in_force.slug,
        status=sub.status,
        interval=sub.interval,
        trial_end=_iso(sub.trial_end),
        current_period_start=_iso(sub.current_period_start),
        current_period_end=_iso(sub.current_period_end),
        cancel_at_period_end=bool(sub.cancel_at_period_end),
        features=summary.features,
        balances=[balance_out(b) for b in summary.balances],
        next_invoice=NextInvoiceOut(
            amount=nxt.amount,
            currency=nxt.currency,
            date=_iso(nxt.date) or "",
            plan=PlanRef(nxt.plan.slug, nxt.plan.name),
            interval=nxt.interval,
        )
        if nxt
        else None,
        upgrade_url=upgrade_url,
    )
