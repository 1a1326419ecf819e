"""The plan card's state: one badge and one sentence per situation (issue 21, item 5).

Every subscription state the portal can hold maps to exactly one `StatusView` here, so the
plan card never shows two stories at once (a "Canceling" badge next to "Free trial: 14 days
left" and "Renews on ..."). Pure: no I/O, tested over every state in
tests/unit/test_plan_state.py.

| kind            | when                                                        | badge              |
|-----------------|-------------------------------------------------------------|--------------------|
| free            | the free plan, never paid                                   | (none: the name)   |
| ended           | the free plan after a paid subscription ended               | (none: the name)   |
| active          | a paid plan that renews                                     | Active             |
| trialing        | a trial with more than `TRIAL_ENDING_DAYS` left             | Trial              |
| trial_ending    | a trial ending within `TRIAL_ENDING_DAYS`                   | Trial ends soon    |
| canceling       | set to end at the period's (or trial's) end                 | Canceling          |
| scheduled       | a change to another plan at the period's end (a downgrade)  | Active             |
| past_due        | a renewal payment failed (Stripe retries)                   | Payment failed     |
| payment_action  | past due because the bank asks the customer to confirm      | Payment to confirm |
| unpaid          | payments failed for good: the free plan's limits apply      | Unpaid             |
| paused          | paused: nothing charged, the free plan's limits apply       | Paused             |
| canceled        | the subscription has ended                                  | Canceled           |
| incomplete      | the first payment is not settled yet                        | Payment pending    |
"""

from __future__ import annotations

from datetime import datetime

from app.billing.rules import trial_days_left
from app.billing.view_models import StatusView
from app.catalog.models import Plan
from app.customers.models import Subscription
from app.lib.jinja import format_date
from app.lib.money import format_money

# A trial this close to its end says so (Stripe sends `trial_will_end` 3 days before).
TRIAL_ENDING_DAYS = 3

SUCCESS, WARNING, DANGER, NEUTRAL = "badge-success", "badge-warning", "badge-danger", ""


def plan_state(
    subscription: Subscription,
    plan: Plan,
    now: datetime,
    *,
    free_plan_name: str = "Free",
    awaiting_bank: bool = False,
    scheduled_plan_name: str | None = None,
) -> StatusView:
    """The one state the plan card shows for `subscription` on `plan` at `now`.

    `awaiting_bank`: an open invoice waits for the customer's bank (3-D Secure), so a past
    due subscription is not declined but to be confirmed. `scheduled_plan_name`: the plan a
    scheduled change moves to ("" for a schedule made outside the portal), None for none."""
    status = subscription.status
    kind, label, badge, line = _state(
        subscription, plan, now, free_plan_name, awaiting_bank, scheduled_plan_name
    )
    trialing = status == "trialing"
    return StatusView(
        status=status,
        label=label,
        badge=badge,
        kind=kind,
        line=line,
        days_left=trial_days_left(subscription.trial_end, now) if trialing else None,
        trial_end=subscription.trial_end if trialing else None,
        # Set to end (whatever else the line says, e.g. a failed payment): "Keep my plan".
        cancel_on=subscription.current_period_end
        if subscription.cancel_at_period_end and status != "canceled"
        else None,
        payment_problem=status in ("past_due", "unpaid"),
    )


def _state(  # one branch per state, in the order they win
    sub: Subscription,
    plan: Plan,
    now: datetime,
    free_name: str,
    awaiting_bank: bool,
    scheduled_to: str | None,
) -> tuple[str, str, str, str]:
    status = sub.status
    price = _price_text(sub, plan)
    if status == "canceled":
        when = f" on {format_date(sub.canceled_at)}" if sub.canceled_at else ""
        return "canceled", "Canceled", DANGER, f"This subscription ended{when}."
    if status == "incomplete_expired":
        return (
            "canceled",
            "Expired",
            DANGER,
            "The first payment was never completed, so this subscription did not start. "
            "Nothing was charged.",
        )
    if status == "incomplete":
        return (
            "incomplete",
            "Payment pending",
            WARNING,
            f"Your first payment for {plan.name} is not confirmed yet.",
        )
    if status == "paused":
        return (
            "paused",
            "Paused",
            WARNING,
            "Your subscription is paused: nothing is charged, and the free plan's limits "
            "apply until it resumes.",
        )
    if status == "unpaid":
        return (
            "unpaid",
            "Unpaid",
            DANGER,
            f"Payments for {plan.name} failed, so the free plan's limits apply. "
            "Update your payment method to get it back.",
        )
    if status == "past_due":
        if awaiting_bank:
            return (
                "payment_action",
                "Payment to confirm",
                WARNING,
                f"Your bank asks you to confirm the last payment for {plan.name}.",
            )
        return (
            "past_due",
            "Payment failed",
            DANGER,
            f"The last payment for {plan.name} failed; Stripe retries it automatically.",
        )
    if sub.cancel_at_period_end and sub.current_period_end is not None:
        end = format_date(sub.current_period_end)
        if status == "trialing":
            text = f"Your trial ends on {end} and {plan.name} ends with it. Nothing is charged."
        else:
            text = (
                f"Canceled: you keep {plan.name} until {end}, then move to {free_name}. "
                "Nothing more is charged."
            )
        return "canceling", "Canceling", WARNING, text
    if scheduled_to is not None and sub.scheduled_change_at is not None:
        at = format_date(sub.scheduled_change_at)
        change = f"Changes to {scheduled_to}" if scheduled_to else "A plan change is scheduled"
        return "scheduled", "Active", SUCCESS, f"{change} on {at}. You keep {plan.name} until then."
    if status == "trialing":
        days = trial_days_left(sub.trial_end, now)
        end = format_date(sub.trial_end or sub.current_period_end)
        then = f"then {price}" if price else "then the plan's price"
        if days is not None and days <= TRIAL_ENDING_DAYS:
            left = "today" if days == 0 else f"in {days} day{'' if days == 1 else 's'}"
            return (
                "trial_ending",
                "Trial ends soon",
                WARNING,
                f"Your free trial ends {left}, on {end}; {then}.",
            )
        left = f": {days} days left," if days is not None else ""
        return "trialing", "Trial", SUCCESS, f"Free trial{left} until {end}; {then}."
    if plan.is_free:
        ended = (sub.metadata_ or {}).get("ended_status")
        if ended and sub.canceled_at is not None:
            why = " after its payments failed" if ended == "unpaid" else ""
            return (
                "ended",
                "",
                NEUTRAL,
                f"Your paid plan ended on {format_date(sub.canceled_at)}{why}. "
                "The free plan has no charges.",
            )
        return "free", "", NEUTRAL, "The free plan has no charges; usage resets as shown below."
    if sub.current_period_end is not None:
        renews = f"Renews on {format_date(sub.current_period_end)}"
        return "active", "Active", SUCCESS, f"{renews} at {price}." if price else f"{renews}."
    return "active", "Active", SUCCESS, f"{price}." if price else "Active."


def _price_text(sub: Subscription, plan: Plan) -> str:
    """ "$29 a month" for the subscription's interval (the monthly price when it has none)."""
    price = plan.price("year" if sub.interval == "year" else "month") or plan.price("month")
    if price is None or not price.amount:
        return ""
    return f"{format_money(price.amount, price.currency)} a {price.interval}"
