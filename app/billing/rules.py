"""Pure billing rules shared by the pages and the Stripe actions (no I/O, no framework)."""

from __future__ import annotations

import math
from datetime import datetime

from app.customers.models import Subscription
from app.customers.statuses import SubscriptionStatus

# What an action answers when its rule refuses it; its confirm page says the same.
NOTHING_TO_CANCEL = "You have no paid subscription to cancel."
KEEP_LAST_CARD = "Add another payment method before removing the only one of a paid plan."


def can_remove_card(cards_count: int, plan_is_paid: bool) -> bool:
    """A payment method (a card, SEPA Direct Debit, US bank account, Link...) can go unless
    it is the last one, of any type, while a paid plan is active."""
    return cards_count > 1 or not plan_is_paid


def plan_is_paid(plan_is_free: bool, status: str) -> bool:
    """Whether a paid plan is in force (so the customer must keep a payment method)."""
    return not plan_is_free and status in SubscriptionStatus.live()


def trial_days_left(trial_end: datetime | None, now: datetime) -> int | None:
    """Whole days left in a trial, rounded up (a trial ending in 2 hours has 1 day left)."""
    if trial_end is None:
        return None
    seconds = (trial_end - now).total_seconds()
    return max(0, math.ceil(seconds / 86_400))


def trial_eligible(subscription: Subscription) -> bool:
    """A free trial is for a customer who never had a Stripe subscription: not one who has
    one now, nor one whose earlier one ended (the mirror keeps its id when it moves the
    customer back to the free plan). Checkout asks for the plan's trial only then, and the
    plans page offers one only then."""
    return not (
        subscription.stripe_subscription_id
        or (subscription.metadata_ or {}).get("last_stripe_subscription_id")
    )


def display_percentage(value: float | None) -> str:
    """At most one decimal, none when whole: 80 → "80", 33.33 → "33.3"."""
    if value is None:
        return ""
    rounded = round(value, 1)
    return f"{rounded:.0f}" if rounded == int(rounded) else f"{rounded:.1f}"


def bar_width(value: float | None) -> float:
    """The filled share of a bar, clamped to 0-100."""
    if value is None:
        return 0.0
    return max(0.0, min(100.0, round(value, 1)))


def page_count(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def clamp_page(raw: str | int | None, pages: int) -> int:
    """A page number from the query string: junk means 1, past the end means the last page."""
    try:
        number = int(raw or 1)
    except (TypeError, ValueError):
        number = 1
    return min(max(1, number), pages)


def change_ends_trial(status: str, same_plan: bool, target_trial_days: int | None) -> bool:
    """A trial belongs to the plan it came with: moving from a trial to another plan that
    offers none (Pro's trial to Business) ends the trial and starts paying now. Another
    interval of the same plan, or a plan with its own trial, keeps it."""
    return status == "trialing" and not same_plan and not target_trial_days


def waits_for_period_end(
    status: str,
    same_plan: bool,  # the same plan on another interval
    current_monthly: int,
    target_monthly: int,
    current_interval: str,
    target_interval: str,
) -> bool:
    """A downgrade takes effect at the end of the paid period (as Stripe's customer portal
    does): a plan that costs less a month, or the same plan on a shorter interval (yearly to
    monthly). Upgrades, and any change during a trial (nothing was paid), happen now."""
    if status == "trialing":
        return False
    if same_plan:
        return current_interval == "year" and target_interval == "month"
    return target_monthly < current_monthly
