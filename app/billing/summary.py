"""The signed-in customer's billing summary (`GET /billing/summary.json`), for a SaaS's own
frontend: plan, status, period, balances, features and the next invoice as far as the
mirror knows it. Read from the database only: no Stripe call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.catalog.models import Catalog, Plan
from app.customers.models import Customer, Subscription
from app.customers.statuses import SubscriptionStatus
from app.lib.clock import as_utc
from app.metering.entitlements import features_of, plan_in_force
from app.metering.service import Balance


@dataclass(frozen=True)
class NextInvoice:
    """What Stripe will charge next for the plan: its price at the renewal (or at the trial's
    end). Overage, tax, discounts and the customer's Stripe balance are not in `amount`."""

    amount: int
    currency: str
    date: datetime
    plan: Plan
    interval: str


@dataclass(frozen=True)
class BillingSummary:
    customer: Customer
    subscription: Subscription
    plan: Plan
    plan_in_force: Plan
    features: dict[str, bool]
    balances: list[Balance]
    next_invoice: NextInvoice | None


def next_invoice(catalog: Catalog, subscription: Subscription) -> NextInvoice | None:
    """The next invoice of a Stripe subscription that goes on (live, not set to cancel): on
    the trial's end while trialing, else at the period's end; for the plan a scheduled change
    brings by then, else the current one. None when nothing is due or the date is unknown."""
    if subscription.stripe_subscription_id is None or subscription.cancel_at_period_end:
        return None
    if subscription.status not in SubscriptionStatus.live():
        return None
    when = subscription.current_period_end
    if subscription.status == SubscriptionStatus.TRIALING and subscription.trial_end:
        when = subscription.trial_end
    if when is None:
        return None
    when = as_utc(when)
    slug, interval = subscription.plan_slug, subscription.interval
    change_at = subscription.scheduled_change_at
    if subscription.scheduled_plan_slug and change_at and as_utc(change_at) <= when:
        slug = subscription.scheduled_plan_slug
        interval = subscription.scheduled_interval or interval
    plan = catalog.plan(slug)
    price = plan.price("year" if interval == "year" else "month") if plan else None
    if plan is None or price is None:
        return None
    return NextInvoice(price.amount, price.currency, when, plan, price.interval)


def billing_summary(
    catalog: Catalog, customer: Customer, subscription: Subscription, balances: list[Balance]
) -> BillingSummary:
    in_force = plan_in_force(catalog, subscription.plan_slug, subscription.status)
    return BillingSummary(
        customer=customer,
        subscription=subscription,
        plan=catalog.plan(subscription.plan_slug) or catalog.default_plan,
        plan_in_force=in_force,
        features=features_of(catalog, in_force),
        balances=balances,
        next_invoice=next_invoice(catalog, subscription),
    )
