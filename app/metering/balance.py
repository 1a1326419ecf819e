"""The balance arithmetic, free of I/O: periods, availability and how usage is paid for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.catalog.models import Quota
from app.lib.clock import add_months, start_of_day, start_of_month

# The one period of a quota that never resets.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime | None  # None: never resets


@dataclass(frozen=True)
class BillingCycle:
    """A subscription's current period as Stripe reported it, and its interval."""

    start: datetime
    end: datetime
    interval: str  # month | year


def current_period(quota: Quota, now: datetime, cycle: BillingCycle | None) -> Period:
    """Daily quotas reset at UTC midnight; `never` is one period forever. `billing_period`
    quotas follow the subscription's current Stripe period (a trial included); a yearly
    period is cut into months from its start, so its quota comes monthly, as the plans page
    promises. Past the period's end (a renewal webhook still on its way) months continue from
    that end. Plans without a Stripe cycle reset on calendar months in UTC."""
    if quota.reset == "never":
        return Period(EPOCH, None)
    if quota.reset == "day":
        start = start_of_day(now)
        return Period(start, start + timedelta(days=1))
    if cycle is None:
        start = start_of_month(now)
        return Period(start, add_months(start, 1))
    if now >= cycle.end:
        return _month_containing(cycle.end, now, None)
    if cycle.interval == "year" or now < cycle.start:
        return _month_containing(cycle.start, now, cycle.end)
    return Period(cycle.start, cycle.end)


def usage_day_start(moment: datetime, cycle: BillingCycle | None) -> datetime:
    """The usage-chart bucket `moment` falls in: its UTC day, except that on the day a billing
    period starts, usage from that moment on is counted apart, so each period's chart holds
    exactly that period's usage."""
    day = start_of_day(moment)
    if cycle is not None and day < cycle.start <= moment:
        return cycle.start
    return day


def _month_containing(anchor: datetime, now: datetime, cap: datetime | None) -> Period:
    """The month-long step from `anchor` that contains `now`, ending no later than `cap`."""
    months = (now.year - anchor.year) * 12 + (now.month - anchor.month)
    if add_months(anchor, months) > now:
        months -= 1
    start, end = add_months(anchor, months), add_months(anchor, months + 1)
    return Period(start, min(end, cap) if cap is not None else end)


@dataclass(frozen=True)
class CreditLot:
    """Unexpired credits of one grant, in consumption order."""

    grant_id: int
    remaining: int
    expires_at: datetime | None


def consumption_order(lots: list[CreditLot]) -> list[CreditLot]:
    """Oldest expiry first; credits that never expire last; ties by grant id (age)."""
    far = datetime.max.replace(tzinfo=UTC)
    # A lot granted in the same batch has no database id yet (a str key): it is the newest.
    return sorted(
        lots,
        key=lambda lot: (lot.expires_at or far, isinstance(lot.grant_id, str), lot.grant_id),
    )


@dataclass
class MeterState:
    """What is known about one (customer, meter, period) inside a write transaction."""

    limit: int | None
    used: int
    credits_used: int
    lots: list[CreditLot]
    held: int
    # Usage beyond included + credits is allowed and billed (a plan with an overage price).
    overage: bool = False
    billed_overage: int = 0

    @property
    def unlimited(self) -> bool:
        return self.limit is None

    @property
    def credits(self) -> int:
        if not self.lots:  # the common case, on the path of every event
            return 0
        return sum(lot.remaining for lot in self.lots)

    @property
    def included_remaining(self) -> int | None:
        if self.limit is None:
            return None
        return max(0, self.limit - (self.used - self.credits_used))

    def available(self, exclude_hold: int = 0) -> int | None:
        """What can still be used, not counting the hold `exclude_hold` (None: unlimited)."""
        return available_amount(
            self.limit, self.used, self.credits_used, self.credits, self.held - exclude_hold
        )

    def can_use(self, amount: int, exclude_hold: int = 0) -> bool:
        return allows(amount, self.available(exclude_hold), overage=self.overage)

    def consume(self, amount: int) -> list[tuple[int, int]]:
        """Record `amount` as used: included quota first, then credits in order, then (only
        with `overage`) billed overage, added to `billed_overage`. Returns (grant_id, amount)
        taken from credits. The caller checked `can_use`."""
        taken: list[tuple[int, int]] = []
        from_quota = amount if self.limit is None else min(amount, self.included_remaining or 0)
        rest = amount - from_quota
        self.used += amount
        if rest:
            for lot in consumption_order(self.lots):
                if rest == 0:
                    break
                take = min(rest, lot.remaining)
                if take:
                    taken.append((lot.grant_id, take))
                    rest -= take
            if rest and not self.overage:
                raise ValueError("consume() called without enough balance")
            self.billed_overage += rest
            spent = dict(taken)
            self.lots = [
                CreditLot(lot.grant_id, lot.remaining - spent.get(lot.grant_id, 0), lot.expires_at)
                for lot in self.lots
            ]
            self.credits_used += sum(take for _, take in taken)
        return taken


def allows(amount: int, available: int | None, *, overage: bool) -> bool:
    """Whether `amount` more can be used: within what is available, or anything when the
    quota is unlimited or usage beyond it is billed as overage."""
    return overage or available is None or amount <= available


def available_amount(
    limit: int | None, used: int, credits_used: int, credits: int, held: int
) -> int | None:
    """Included quota left + credits - holds, never below 0; None when the quota is unlimited."""
    if limit is None:
        return None
    return max(0, max(0, limit - (used - credits_used)) + credits - held)


def percentage(used: int, credits_used: int, limit: int | None) -> float | None:
    """Share of the included quota used, 0-100 (None when unlimited)."""
    if limit is None:
        return None
    if limit == 0:
        return 100.0  # nothing is included: the quota is used up from the start
    # Rounded down to 0.1, on integers: 100 only once the quota is used up (99.996 % is 99.9).
    return min(1000, (used - credits_used) * 1000 // limit) / 10
