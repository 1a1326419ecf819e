"""The plan card's one state per situation (app/billing/plan_state.py, issue 21 item 5), and
the trial eligibility the plans page shares with Checkout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.billing.plan_state import plan_state
from app.billing.rules import trial_eligible
from app.catalog.models import Plan, Price
from app.customers.models import Subscription
from app.customers.statuses import SubscriptionStatus

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
PRO = Plan(
    slug="pro",
    name="Pro",
    description="",
    prices={"month": Price("month", 2900, "usd"), "year": Price("year", 29000, "usd")},
    quotas={},
    trial_days=14,
)
FREE = Plan(
    slug="free",
    name="Free",
    description="",
    prices={"month": Price("month", 0, "usd")},
    quotas={},
    default=True,
)


def sub(**values: Any) -> Subscription:
    row: dict[str, Any] = {
        "plan_slug": "pro",
        "interval": "month",
        "status": "active",
        "stripe_subscription_id": "sub_1",
        "current_period_start": NOW - timedelta(days=10),
        "current_period_end": NOW + timedelta(days=20),
        "trial_end": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "scheduled_change_at": None,
        "metadata_": {},
    }
    row.update(values)
    return Subscription(**row)


def state(subscription: Subscription, plan: Plan = PRO, **kwargs: Any) -> tuple[str, str, str]:
    view = plan_state(subscription, plan, NOW, **kwargs)
    return view.kind, view.label, view.line


# Every situation: (subscription, plan, options) -> (kind, badge label, the one sentence).
CASES = [
    (
        "free",
        sub(plan_slug="free", stripe_subscription_id=None, current_period_end=None),
        FREE,
        {},
        ("free", "", "The free plan has no charges; usage resets as shown below."),
    ),
    (
        "ended",
        sub(
            plan_slug="free",
            stripe_subscription_id=None,
            current_period_end=None,
            canceled_at=NOW - timedelta(days=3),
            metadata_={"last_stripe_subscription_id": "sub_0", "ended_status": "canceled"},
        ),
        FREE,
        {},
        ("ended", "", "Your paid plan ended on Dec 1, 2026. The free plan has no charges."),
    ),
    (
        "ended unpaid",
        sub(
            plan_slug="free",
            stripe_subscription_id=None,
            canceled_at=NOW - timedelta(days=3),
            metadata_={"last_stripe_subscription_id": "sub_0", "ended_status": "unpaid"},
        ),
        FREE,
        {},
        (
            "ended",
            "",
            "Your paid plan ended on Dec 1, 2026 after its payments failed. "
            "The free plan has no charges.",
        ),
    ),
    (
        "active",
        sub(),
        PRO,
        {},
        ("active", "Active", "Renews on Dec 24, 2026 at $29 a month."),
    ),
    (
        "active yearly",
        sub(interval="year"),
        PRO,
        {},
        ("active", "Active", "Renews on Dec 24, 2026 at $290 a year."),
    ),
    (
        "trialing",
        sub(status="trialing", trial_end=NOW + timedelta(days=10)),
        PRO,
        {},
        ("trialing", "Trial", "Free trial: 10 days left, until Dec 14, 2026; then $29 a month."),
    ),
    (
        "trial ending soon",
        sub(status="trialing", trial_end=NOW + timedelta(days=2)),
        PRO,
        {},
        (
            "trial_ending",
            "Trial ends soon",
            "Your free trial ends in 2 days, on Dec 6, 2026; then $29 a month.",
        ),
    ),
    (
        "trial ending today",
        sub(status="trialing", trial_end=NOW),
        PRO,
        {},
        (
            "trial_ending",
            "Trial ends soon",
            "Your free trial ends today, on Dec 4, 2026; then $29 a month.",
        ),
    ),
    (
        "canceling",
        sub(cancel_at_period_end=True),
        PRO,
        {},
        (
            "canceling",
            "Canceling",
            "Canceled: you keep Pro until Dec 24, 2026, then move to Free. "
            "Nothing more is charged.",
        ),
    ),
    (
        "canceling in a trial",
        sub(
            status="trialing",
            trial_end=NOW + timedelta(days=10),
            current_period_end=NOW + timedelta(days=10),
            cancel_at_period_end=True,
        ),
        PRO,
        {},
        (
            "canceling",
            "Canceling",
            "Your trial ends on Dec 14, 2026 and Pro ends with it. Nothing is charged.",
        ),
    ),
    (
        "scheduled downgrade",
        sub(scheduled_change_at=NOW + timedelta(days=20)),
        PRO,
        {"scheduled_plan_name": "Starter"},
        ("scheduled", "Active", "Changes to Starter on Dec 24, 2026. You keep Pro until then."),
    ),
    (
        "past due",
        sub(status="past_due"),
        PRO,
        {},
        (
            "past_due",
            "Payment failed",
            "The last payment for Pro failed; Stripe retries it automatically.",
        ),
    ),
    (
        "past due, the bank asks",
        sub(status="past_due"),
        PRO,
        {"awaiting_bank": True},
        (
            "payment_action",
            "Payment to confirm",
            "Your bank asks you to confirm the last payment for Pro.",
        ),
    ),
    (
        "unpaid",
        sub(status="unpaid"),
        PRO,
        {},
        (
            "unpaid",
            "Unpaid",
            "Payments for Pro failed, so the free plan's limits apply. "
            "Update your payment method to get it back.",
        ),
    ),
    (
        "paused",
        sub(status="paused"),
        PRO,
        {},
        (
            "paused",
            "Paused",
            "Your subscription is paused: nothing is charged, and the free plan's limits "
            "apply until it resumes.",
        ),
    ),
    (
        "canceled",
        sub(status="canceled", canceled_at=NOW - timedelta(days=1)),
        PRO,
        {},
        ("canceled", "Canceled", "This subscription ended on Dec 3, 2026."),
    ),
    (
        "incomplete",
        sub(status="incomplete"),
        PRO,
        {},
        ("incomplete", "Payment pending", "Your first payment for Pro is not confirmed yet."),
    ),
    (
        "incomplete expired",
        sub(status="incomplete_expired"),
        PRO,
        {},
        (
            "canceled",
            "Expired",
            "The first payment was never completed, so this subscription did not start. "
            "Nothing was charged.",
        ),
    ),
]


@pytest.mark.parametrize(
    ("subscription", "plan", "options", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_one_state_per_situation(
    subscription: Subscription, plan: Plan, options: dict[str, Any], expected: tuple[str, ...]
) -> None:
    assert state(subscription, plan, **options) == expected


def test_every_stripe_status_has_a_state_of_its_own() -> None:
    seen = {state(sub(status=status.value))[0] for status in SubscriptionStatus}
    assert len(seen) == len(SubscriptionStatus) - 1  # incomplete_expired reads as canceled


def test_cancel_wins_over_trial_and_renewal() -> None:
    """The bug of issue 21 item 5: a canceling trial showed 'Canceling', the price, 'Free
    trial: 14 days left' and 'Your plan is canceled' at once."""
    view = plan_state(
        sub(status="trialing", trial_end=NOW + timedelta(days=14), cancel_at_period_end=True),
        PRO,
        NOW,
    )
    assert view.kind == "canceling" and "$29" not in view.line and "left" not in view.line
    assert view.cancel_on is not None and view.days_left == 14


def test_a_payment_problem_wins_over_a_schedule_and_a_trial_is_not_one() -> None:
    scheduled = sub(status="past_due", scheduled_change_at=NOW + timedelta(days=20))
    assert state(scheduled, scheduled_plan_name="Starter")[0] == "past_due"
    # Past due and set to end: the line is the payment's, "Keep my plan" still offered.
    ending = plan_state(sub(status="past_due", cancel_at_period_end=True), PRO, NOW)
    assert ending.kind == "past_due" and ending.cancel_on == NOW + timedelta(days=20)
    assert plan_state(sub(status="past_due"), PRO, NOW).payment_problem
    assert plan_state(sub(status="unpaid"), PRO, NOW).payment_problem
    assert not plan_state(sub(status="trialing"), PRO, NOW).payment_problem


def test_badges_say_how_serious() -> None:
    badge = {
        kind: plan_state(s, p, NOW, **o).badge for kind, s, p, o, _ in CASES if kind != "ended"
    }
    assert badge["active"] == badge["trialing"] == "badge-success"
    assert badge["trial ending soon"] == badge["canceling"] == "badge-warning"
    assert badge["past due"] == badge["unpaid"] == badge["canceled"] == "badge-danger"


def test_a_trial_only_for_a_customer_who_never_had_a_subscription() -> None:
    """The rule Checkout uses (BillingService._plan_checkout) and the plans page shows."""
    never = sub(plan_slug="free", stripe_subscription_id=None, metadata_={})
    assert trial_eligible(never)
    assert trial_eligible(sub(plan_slug="free", stripe_subscription_id=None, metadata_=None))
    assert not trial_eligible(sub(status="trialing"))  # has one now
    assert not trial_eligible(sub())
    ended = sub(
        plan_slug="free",
        stripe_subscription_id=None,
        metadata_={"last_stripe_subscription_id": "sub_0", "ended_status": "canceled"},
    )
    assert not trial_eligible(ended)  # had one: Checkout gives no second trial
