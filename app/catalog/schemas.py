"""`GET /api/v1/plans`: the public plans as JSON, for a SaaS's own pricing page."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgspec
from msgspec import Struct

from app.catalog.models import Catalog, Plan


class FeatureOut(Struct):
    code: str
    name: str
    description: str


class MeterOut(Struct):
    code: str
    name: str
    unit: str


class PriceOut(Struct):
    interval: str  # month | year
    amount: int  # minor units
    currency: str


class PlanQuotaOut(Struct):
    meter: str
    included: int | None  # null: unlimited
    unlimited: bool
    reset: str  # billing_period (monthly, on yearly plans too) | day | never
    # Minor units per unit used beyond the quota and credits; null: a hard limit.
    overage_unit_amount: int | None


class PlanOut(Struct):
    code: str
    name: str
    description: str
    default: bool
    trial_days: int
    prices: list[PriceOut]
    quotas: list[PlanQuotaOut]
    features: dict[str, bool]  # every declared feature, on or off
    highlights: list[str]


class PlansOut(Struct):
    """The public plans in the catalog's order, with the features and meters they name."""

    plans: list[PlanOut]
    features: list[FeatureOut]
    meters: list[MeterOut]


def plan_out(catalog: Catalog, plan: Plan) -> PlanOut:
    return PlanOut(
        code=plan.slug,
        name=plan.name,
        description=plan.description,
        default=plan.default,
        trial_days=plan.trial_days,
        prices=[PriceOut(p.interval, p.amount, p.currency) for p in plan.prices.values()],
        quotas=[
            PlanQuotaOut(q.meter_code, q.included, q.unlimited, q.reset, q.overage_unit_amount)
            for code in catalog.meters
            if (q := plan.quotas.get(code)) is not None
        ],
        features={code: plan.has_feature(code) for code in catalog.features},
        highlights=list(plan.highlights),
    )


@dataclass(frozen=True)
class PlansDocument:
    """The encoded answer and its entity tag (a hash of the bytes: the same catalog gives
    the same tag in every process)."""

    body: bytes
    etag: str

    def matches(self, if_none_match: str | None) -> bool:
        """Whether an `If-None-Match` header names this document (weak comparison)."""
        if not if_none_match:
            return False
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or self.etag in tags


_DOCUMENTS: dict[int, tuple[Catalog, PlansDocument]] = {}


def plans_document(catalog: Catalog) -> PlansDocument:
    """Built once per catalog (it does not change while the process runs)."""
    known = _DOCUMENTS.get(id(catalog))
    if known is not None and known[0] is catalog:
        return known[1]
    out = PlansOut(
        plans=[plan_out(catalog, plan) for plan in catalog.public_plans()],
        features=[FeatureOut(f.code, f.name, f.description) for f in catalog.features.values()],
        meters=[MeterOut(m.code, m.name, m.unit) for m in catalog.meters.values()],
    )
    body = msgspec.json.encode(out)
    document = PlansDocument(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
    _DOCUMENTS[id(catalog)] = (catalog, document)
    return document
