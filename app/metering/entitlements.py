"""Feature entitlements: what the plan in force lets a customer do, and where to find what it
does not. The features are the catalog's (`[features.<code>]`, a plan's `features` table);
this module decides, free of I/O."""

from __future__ import annotations

from dataclasses import dataclass

from app.catalog.models import Catalog, Feature, Plan
from app.lib.errors import Forbidden
from app.metering.rules import quota_plan


@dataclass(frozen=True)
class FeatureDecision:
    feature: Feature
    plan: Plan  # the plan in force (its quotas and its features)
    allowed: bool
    # When refused: the cheapest public plan that has the feature (None if none has it).
    cheapest_plan: Plan | None = None


class FeatureNotInPlan(Forbidden):
    """`403 feature_not_in_plan`: the customer's plan does not include the feature."""

    code = "feature_not_in_plan"


def plan_in_force(catalog: Catalog, plan_slug: str, status: str) -> Plan:
    """Features follow the plan whose quotas apply: the subscription's, or the free plan's
    while it is paused (app.metering.rules.quota_plan)."""
    return quota_plan(catalog, plan_slug, status)


def features_of(catalog: Catalog, plan: Plan) -> dict[str, bool]:
    """Every declared feature, on or off for `plan`, in the catalog's order."""
    return {code: plan.has_feature(code) for code in catalog.features}


def decide(catalog: Catalog, plan: Plan, feature: Feature) -> FeatureDecision:
    if plan.has_feature(feature.code):
        return FeatureDecision(feature, plan, True)
    return FeatureDecision(feature, plan, False, catalog.cheapest_plan_with(feature.code))


def refusal(decision: FeatureDecision, upgrade_url: str) -> FeatureNotInPlan:
    """The `403` of a refused feature, in the API's error shape (app.web.errors.ApiError)."""
    cheapest = decision.cheapest_plan
    where = f" {cheapest.name} includes it." if cheapest else ""
    return FeatureNotInPlan(
        f"The {decision.plan.name} plan does not include {decision.feature.name}.{where}",
        feature=decision.feature.code,
        plan=decision.plan.slug,
        upgrade_url=upgrade_url,
        cheapest_plan={"code": cheapest.slug, "name": cheapest.name} if cheapest else None,
    )
