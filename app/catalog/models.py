"""The catalog: meters, plans and credit packs, loaded from TOML (not stored in the database)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Aggregation = Literal["count", "sum"]
Reset = Literal["billing_period", "day", "never"]
Interval = Literal["month", "year"]


@dataclass(frozen=True)
class Meter:
    code: str
    name: str
    unit: str
    aggregation: Aggregation
    field_name: str | None = None


@dataclass(frozen=True)
class Feature:
    """Something a plan lets a customer do, yes or no (`[features.<code>]` in the catalog)."""

    code: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class Price:
    interval: Interval
    amount: int
    currency: str

    def lookup_key(self, plan_slug: str) -> str:
        return f"plan_{plan_slug}_{self.interval}ly"


@dataclass(frozen=True)
class Quota:
    meter_code: str
    included: int | None  # None = unlimited
    reset: Reset
    # Minor units per unit used beyond the included quota and credits; None = a hard limit.
    overage_unit_amount: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.included is None

    @property
    def has_overage(self) -> bool:
        return self.overage_unit_amount is not None


@dataclass(frozen=True)
class Plan:
    slug: str
    name: str
    description: str
    prices: dict[Interval, Price]
    quotas: dict[str, Quota]
    trial_days: int = 0
    default: bool = False
    public: bool = True
    # The display bullets of the plans page (`highlights`), and the features it turns on.
    highlights: tuple[str, ...] = ()
    features: frozenset[str] = frozenset()

    @property
    def is_free(self) -> bool:
        return all(price.amount == 0 for price in self.prices.values())

    def has_feature(self, code: str) -> bool:
        """A feature the plan does not turn on is off (missing = false)."""
        return code in self.features

    @property
    def yearly_cost(self) -> int:
        """What a year of the plan costs at its cheaper interval, in minor units (monthly
        times 12, or the yearly price): how plans are ranked by price."""
        return min(
            price.amount * (12 if price.interval == "month" else 1)
            for price in self.prices.values()
        )

    def price(self, interval: Interval) -> Price | None:
        return self.prices.get(interval)

    def overage_quotas(self) -> list[Quota]:
        return [quota for quota in self.quotas.values() if quota.has_overage]

    def overage_lookup_key(self, meter_code: str, interval: Interval) -> str:
        """The Stripe metered price billing this plan's overage of a meter, per interval
        (a subscription's prices must share one interval)."""
        return f"overage_{self.slug}_{meter_code}_{interval}ly"

    def yearly_savings(self) -> int:
        """Minor units saved per year by paying yearly (0 when no saving or no yearly price)."""
        monthly, yearly = self.prices.get("month"), self.prices.get("year")
        if monthly is None or yearly is None:
            return 0
        return max(0, monthly.amount * 12 - yearly.amount)


@dataclass(frozen=True)
class CreditPack:
    slug: str
    name: str
    meter_code: str
    credits: int
    amount: int
    currency: str
    expires_after_days: int | None = None

    @property
    def lookup_key(self) -> str:
        return f"pack_{self.slug}"


@dataclass(frozen=True)
class Catalog:
    meters: dict[str, Meter]
    plans: dict[str, Plan]
    credit_packs: dict[str, CreditPack]
    source: str = field(default="", compare=False)
    features: dict[str, Feature] = field(default_factory=dict)

    @property
    def default_plan(self) -> Plan:
        return next(plan for plan in self.plans.values() if plan.default)

    def plan(self, slug: str) -> Plan | None:
        return self.plans.get(slug)

    def meter(self, code: str) -> Meter | None:
        return self.meters.get(code)

    def public_plans(self) -> list[Plan]:
        return [plan for plan in self.plans.values() if plan.public]

    def feature(self, code: str) -> Feature | None:
        return self.features.get(code)

    def cheapest_plan_with(self, feature: str) -> Plan | None:
        """The public plan with `feature` that costs least a year (`Plan.yearly_cost`); of
        plans costing the same, the first in the catalog. None when no public plan has it."""
        having = [plan for plan in self.public_plans() if plan.has_feature(feature)]
        return min(having, key=lambda plan: plan.yearly_cost) if having else None

    def plan_for_lookup_key(self, lookup_key: str) -> tuple[Plan, Price] | None:
        for plan in self.plans.values():
            for price in plan.prices.values():
                if price.lookup_key(plan.slug) == lookup_key:
                    return plan, price
        return None
