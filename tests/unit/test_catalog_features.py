"""Catalog features (issue 20, item 2): declared once under [features], turned on per plan,
missing = false, an undeclared or non-boolean one refused with its key; the cheapest public
plan with a feature; the next invoice a billing summary shows."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.billing.summary import next_invoice
from app.catalog.loader import CatalogError, load_catalog, parse_catalog
from app.metering.entitlements import decide, features_of, plan_in_force, refusal

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _raw() -> dict[str, Any]:
    return {
        "meters": {"calls": {"name": "Calls"}},
        "features": {
            "export": {"name": "Data export"},
            "sso": {"name": "Single sign-on", "description": "Through your provider."},
        },
        "plans": {
            "free": {
                "name": "Free",
                "default": True,
                "prices": {"monthly": {"amount": 0}},
                "highlights": ["10 calls"],
            },
            "team": {
                "name": "Team",
                "prices": {"monthly": {"amount": 5000}},
                "features": {"export": True, "sso": True},
            },
            "solo": {
                "name": "Solo",
                "prices": {"monthly": {"amount": 1500}, "yearly": {"amount": 12000}},
                "features": {"export": True, "sso": False},
            },
            "cheap": {
                "name": "Cheap",
                # 1,100 a month: 13,200 a year, dearer than Solo's yearly 12,000.
                "prices": {"monthly": {"amount": 1100}},
                "features": {"export": True},
            },
            "hidden": {
                "name": "Hidden",
                "public": False,
                "prices": {"monthly": {"amount": 1}},
                "features": {"export": True, "sso": True},
            },
        },
    }


def _refused(raw: dict[str, Any], key: str) -> CatalogError:
    with pytest.raises(CatalogError) as error:
        parse_catalog(raw)
    assert error.value.key == key, error.value
    return error.value


def test_features_are_declared_once_and_a_plan_turns_them_on():
    catalog = parse_catalog(_raw())
    assert list(catalog.features) == ["export", "sso"]
    assert catalog.features["sso"].description == "Through your provider."
    assert catalog.plans["team"].features == {"export", "sso"}
    assert catalog.plans["solo"].features == {"export"}  # false is off
    # A plan that does not mention a feature does not have it (missing = false).
    assert catalog.plans["free"].features == frozenset()
    assert features_of(catalog, catalog.plans["free"]) == {"export": False, "sso": False}
    assert catalog.plans["free"].highlights == ("10 calls",)


def test_an_undeclared_feature_is_refused_naming_it():
    raw = _raw()
    raw["plans"]["team"]["features"]["exprot"] = True
    error = _refused(raw, "plans.team.features.exprot")
    assert "declare it under [features.exprot]" in error.problem
    assert "export, sso" in error.problem


@pytest.mark.parametrize("value", ["yes", 1, None, {"on": True}])
def test_a_feature_is_true_or_false(value):
    raw = _raw()
    raw["plans"]["team"]["features"]["export"] = value
    _refused(raw, "plans.team.features.export")


def test_bad_feature_declarations_are_refused():
    raw = _raw()
    raw["features"]["export"] = {"title": "Export"}
    _refused(raw, "features.export.title")
    raw = _raw()
    raw["features"]["export"] = {"description": "no name"}
    _refused(raw, "features.export.name")
    raw = _raw()
    raw["features"]["Bad-Code"] = {"name": "Bad"}
    _refused(raw, "features.Bad-Code")
    raw = _raw()
    raw["plans"]["team"]["features"] = ["Export", "SSO"]
    raw["plans"]["team"]["highlights"] = ["x"]
    _refused(raw, "plans.team.features")


def test_the_older_bullet_list_still_loads_as_highlights():
    raw = _raw()
    raw["plans"]["free"] = {
        "name": "Free",
        "default": True,
        "prices": {"monthly": {"amount": 0}},
        "features": ["20 calls a day", "Community support"],
    }
    catalog = parse_catalog(raw)
    assert catalog.plans["free"].highlights == ("20 calls a day", "Community support")
    assert catalog.plans["free"].features == frozenset()


def test_a_catalog_without_features_has_none():
    raw = _raw()
    del raw["features"]
    for plan in raw["plans"].values():
        plan.pop("features", None)
    catalog = parse_catalog(raw)
    assert catalog.features == {} and catalog.cheapest_plan_with("export") is None


def test_the_cheapest_public_plan_with_a_feature_by_yearly_cost():
    catalog = parse_catalog(_raw())
    # Solo costs 12,000 a year (its yearly price) against Cheap's 13,200 and Team's 60,000;
    # Hidden, at 1 a month, is not public.
    assert catalog.cheapest_plan_with("export").slug == "solo"
    assert catalog.cheapest_plan_with("sso").slug == "team"
    assert catalog.cheapest_plan_with("nothing") is None


def test_of_plans_costing_the_same_the_first_in_the_catalog_wins():
    raw = _raw()
    raw["plans"]["cheap"]["prices"] = {"yearly": {"amount": 12000}}
    assert parse_catalog(raw).cheapest_plan_with("export").slug == "solo"
    reordered = copy.deepcopy(raw)
    reordered["plans"] = {
        slug: raw["plans"][slug] for slug in ["free", "cheap", "team", "solo", "hidden"]
    }
    assert parse_catalog(reordered).cheapest_plan_with("export").slug == "cheap"


def test_a_refusal_names_the_plan_in_force_and_the_cheapest_with_the_feature():
    catalog = parse_catalog(_raw())
    decision = decide(catalog, catalog.plans["solo"], catalog.features["sso"])
    assert not decision.allowed and decision.cheapest_plan.slug == "team"
    error = refusal(decision, "https://portal.test/billing/upgrade")
    assert (error.status_code, error.code) == (403, "feature_not_in_plan")
    assert error.extra == {
        "feature": "sso",
        "plan": "solo",
        "upgrade_url": "https://portal.test/billing/upgrade",
        "cheapest_plan": {"code": "team", "name": "Team"},
    }
    assert decide(catalog, catalog.plans["team"], catalog.features["sso"]).allowed
    # Paused: the free plan's features apply, as its quotas do.
    assert plan_in_force(catalog, "team", "paused").slug == "free"
    assert plan_in_force(catalog, "team", "past_due").slug == "team"


def test_the_project_catalog_declares_its_features():
    catalog = load_catalog(PROJECT_ROOT / "catalog.toml")
    assert {"export", "priority_support", "sso"} <= set(catalog.features)
    assert catalog.cheapest_plan_with("export").slug == "pro"
    assert catalog.cheapest_plan_with("sso").slug == "business"
    assert not catalog.plans["free"].features


# The next invoice of a billing summary -----------------------------------------------------

END = datetime(2026, 5, 1, tzinfo=UTC)


def _subscription(**values: Any) -> Any:
    row = {
        "stripe_subscription_id": "sub_1",
        "status": "active",
        "cancel_at_period_end": False,
        "plan_slug": "solo",
        "interval": "month",
        "current_period_end": END,
        "trial_end": None,
        "scheduled_plan_slug": None,
        "scheduled_interval": None,
        "scheduled_change_at": None,
    }
    row.update(values)
    return SimpleNamespace(**row)


def test_the_next_invoice_is_the_plan_price_at_the_renewal():
    catalog = parse_catalog(_raw())
    found = next_invoice(catalog, _subscription())
    assert (found.amount, found.currency, found.date, found.plan.slug) == (1500, "usd", END, "solo")
    yearly = next_invoice(catalog, _subscription(interval="year"))
    assert (yearly.amount, yearly.interval) == (12000, "year")
    # Naive times (SQLite) are UTC.
    assert (
        next_invoice(catalog, _subscription(current_period_end=END.replace(tzinfo=None))).date
        == END
    )


def test_the_next_invoice_of_a_trial_is_at_its_end_and_a_scheduled_change_is_priced():
    catalog = parse_catalog(_raw())
    trial_end = END - timedelta(days=3)
    trial = next_invoice(catalog, _subscription(status="trialing", trial_end=trial_end))
    assert trial.date == trial_end
    changed = _subscription(scheduled_plan_slug="cheap", scheduled_change_at=END)
    assert next_invoice(catalog, changed).plan.slug == "cheap"
    later = _subscription(scheduled_plan_slug="cheap", scheduled_change_at=END + timedelta(days=30))
    assert next_invoice(catalog, later).plan.slug == "solo"


@pytest.mark.parametrize(
    "values",
    [
        {"stripe_subscription_id": None},
        {"cancel_at_period_end": True},
        {"status": "canceled"},
        {"status": "paused"},
        {"current_period_end": None},
    ],
)
def test_no_next_invoice_when_nothing_is_due_or_known(values):
    assert next_invoice(parse_catalog(_raw()), _subscription(**values)) is None
