"""Auto top-up and the low-balance email: the tables and the rules, free of I/O.

A customer sets, per meter, "when my balance falls below N, buy pack P" (with a monthly
spending cap) and, separately, "email me when it falls below M". The balance is the meter's
`available` (included quota left plus credits, less holds), what decides a `402`.

Nothing of this runs on the usage write path: the Stripe worker evaluates the rules of the
customers whose usage changed (app/stripe_sync/auto_top_up.py). Each threshold has an *armed*
flag: a balance at or above the threshold arms it, a balance below it fires it once and
disarms it. Firing is a compare-and-set on the rule row (its crossing counters), so however
many events arrive at once and however many workers look, one crossing is one purchase row
(unique per rule and crossing) and one email.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The tables live with billing's other models (app.db.models imports only `*.models`).
from app.billing.models import AutoTopUp, AutoTopUpPurchase

# Purchase statuses.
PENDING = "pending"  # a crossing claimed it; the payment is being made (or will be retried)
SUCCEEDED = "succeeded"  # paid and the pack's credits granted
FAILED = "failed"  # declined or needs authentication: auto top-up was turned off
CAPPED = "capped"  # not charged: it would have gone over the monthly cap
# What counts against the monthly cap: money taken, or being taken.
SPENDING = (PENDING, SUCCEEDED)


# The rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crossing:
    fire: bool  # act now (buy the pack, send the email)
    armed: bool  # the threshold's armed flag after this evaluation


def crossing(previous: int | None, new: int, threshold: int, armed: bool) -> Crossing:
    """Whether a balance of `new` fires a threshold, once per crossing.

    `previous` is the balance the last evaluation saw (None: never evaluated); `armed` says
    the balance has been at or above `threshold` since the threshold last fired (a threshold
    starts armed when it is turned on). At or above the threshold: nothing fires and the
    threshold is armed again. Below it: it fires if armed, or if the last evaluation saw it at
    or above (a fall between two looks), and is disarmed until the balance comes back up.
    """
    if new >= threshold:
        return Crossing(fire=False, armed=True)
    fell = armed or (previous is not None and previous >= threshold)
    return Crossing(fire=fell, armed=False)


def within_cap(spent_this_month: int, price: int, monthly_cap: int) -> bool:
    """A purchase of `price` is allowed when it keeps the month's spending at or under the cap."""
    return price > 0 and spent_this_month + price <= monthly_cap


def month_start(now: datetime) -> datetime:
    """The start of `now`'s calendar month (UTC): the cap's window."""
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def purchase_key(customer_public_id: str, rule_id: int, crossing_number: int) -> str:
    """One purchase per crossing: Stripe's idempotency key and the grant's transaction id."""
    return f"auto-top-up:{customer_public_id}:{rule_id}:{crossing_number}"


__all__ = [
    "CAPPED",
    "FAILED",
    "PENDING",
    "SPENDING",
    "SUCCEEDED",
    "AutoTopUp",
    "AutoTopUpPurchase",
    "Crossing",
    "crossing",
    "month_start",
    "purchase_key",
    "within_cap",
]
