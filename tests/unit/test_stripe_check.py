"""`billing-portal stripe-check`'s rules: what Stripe shows → OK / MISSING / WARNING lines."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from app.billing.catalog_sync import desired_meters, desired_products
from app.catalog.models import Catalog
from app.stripe_sync.stripe_check import (
    Expected,
    Line,
    StripeFacts,
    failed,
    is_live_key,
    report,
    required_events,
    summary,
)

URL = "https://billing.example.com/webhooks/stripe"
VERSION = "2026-10-28.endive"


def _on(available: bool = True) -> dict[str, Any]:
    return {"available": available, "display_preference": {"preference": "on", "value": "on"}}


OFF = {"available": False, "display_preference": {"preference": "off", "value": "off"}}


def good_facts(catalog: Catalog) -> StripeFacts:
    """Everything in place, as a live account ready to go would show it."""
    meter_ids = {m.meter_code: f"mtr_{m.meter_code}" for m in desired_meters(catalog)}
    meters = [
        {"id": meter_ids[m.meter_code], "event_name": m.event_name, "status": "active"}
        for m in desired_meters(catalog)
    ]
    prices = {
        p.lookup_key: {
            "id": f"price_{p.lookup_key}",
            "lookup_key": p.lookup_key,
            "unit_amount": p.amount,
            "currency": p.currency,
            "product": p.product_id,
            "active": True,
            "recurring": None
            if p.interval is None
            else {
                "interval": p.interval,
                "usage_type": "metered" if p.meter_id else "licensed",
                "meter": p.meter_id,
            },
        }
        for product in desired_products(catalog, meter_ids)
        for p in product.prices
    }
    return StripeFacts(
        account={
            "id": "acct_1",
            "business_profile": {"name": "Acme", "support_email": "help@acme.test"},
            "charges_enabled": True,
            "details_submitted": True,
        },
        portal_configurations=[
            {
                "id": "bpc_other",
                "is_default": False,
                "active": True,
                "features": {"subscription_update": {"enabled": True}},
            },
            {
                "id": "bpc_default",
                "is_default": True,
                "active": True,
                "features": {
                    "subscription_update": {"enabled": False},
                    "subscription_pause": {"enabled": False},
                    "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
                    "payment_method_update": {"enabled": True},
                    "invoice_history": {"enabled": True},
                    "customer_update": {"enabled": True, "allowed_updates": ["address"]},
                },
            },
        ],
        webhook_endpoints=[
            {
                "id": "we_1",
                "url": URL,
                "status": "enabled",
                "enabled_events": sorted(required_events()),
                "api_version": VERSION,
            }
        ],
        payment_method_configurations=[
            {
                "id": "pmc_1",
                "active": True,
                "is_default": True,
                "parent": None,
                "card": _on(),  # type: ignore[typeddict-unknown-key]
                "link": _on(),
                "sepa_debit": OFF,
            }
        ],
        meters=meters,
        prices=prices,
    )


@pytest.fixture
def expected(catalog: Catalog) -> Expected:
    return Expected(
        webhook_url=URL,
        events=required_events(),
        api_version=VERSION,
        live_key=True,
        emulator=False,
        webhook_secret="whsec_abc",
        catalog=catalog,
    )


def _with(facts: StripeFacts, name: str, change: Callable[[Any], None]) -> StripeFacts:
    value = copy.deepcopy(getattr(facts, name))
    change(value)
    return replace(facts, **{name: value})


def _lines(lines: list[Line], status: str) -> list[str]:
    return [str(line) for line in lines if line.status == status]


def test_a_ready_live_account_is_all_ok(catalog: Catalog, expected: Expected) -> None:
    lines = report(good_facts(catalog), expected)
    assert _lines(lines, "MISSING") == [] and _lines(lines, "WARNING") == []
    assert not failed(lines)
    text = "\n".join(map(str, lines))
    assert "OK      key: a live mode key" in text
    assert "OK      portal: default configuration bpc_default" in text
    assert "OK      portal: cancellation at the period end" in text
    assert f"OK      webhooks: we_1 sends to {URL}" in text
    assert f"OK      webhooks: API version {VERSION}" in text
    assert "OK      payment methods: on: card, link" in text
    assert "OK      catalog:" in text
    assert summary(lines) == "Nothing missing (0 warning(s))."


def _no_default(configs: list[dict[str, Any]]) -> None:
    configs[1]["is_default"] = False


def _plan_switching(configs: list[dict[str, Any]]) -> None:
    configs[1]["features"]["subscription_update"]["enabled"] = True


def _cancel_now(configs: list[dict[str, Any]]) -> None:
    configs[1]["features"]["subscription_cancel"]["mode"] = "immediately"


def _endpoint(change: Callable[[dict[str, Any]], None]) -> Callable[[list[Any]], None]:
    return lambda endpoints: change(endpoints[0])


@pytest.mark.parametrize(
    ("name", "change", "missing"),
    [
        ("account", lambda a: a["business_profile"].update(name=None), "account: no business name"),
        ("account", lambda a: a.update(charges_enabled=False), "charges are not enabled"),
        ("portal_configurations", _no_default, "portal: no default configuration"),
        ("portal_configurations", _plan_switching, "portal: customers can switch plans"),
        ("portal_configurations", _cancel_now, "cancellation ends plans immediately"),
        ("webhook_endpoints", lambda e: e.clear(), f"webhooks: no endpoint for {URL}"),
        (
            "webhook_endpoints",
            _endpoint(lambda e: e.update(url="https://old.example.com/webhooks/stripe")),
            "(endpoints found: https://old.example.com/webhooks/stripe)",
        ),
        (
            "webhook_endpoints",
            _endpoint(lambda e: e.update(status="disabled")),
            "we_1 (https://billing.example.com/webhooks/stripe) is disabled",
        ),
        (
            "webhook_endpoints",
            _endpoint(lambda e: e["enabled_events"].remove("invoice.paid")),
            "we_1 does not send: invoice.paid",
        ),
        (
            "webhook_endpoints",
            _endpoint(lambda e: e.update(api_version=None)),
            "we_1 renders events in the account's default",
        ),
        (
            "webhook_endpoints",
            _endpoint(lambda e: e.update(api_version="2025-01-27.acacia")),
            "renders events in 2025-01-27.acacia, the app's SDK in 2026-10-28.endive",
        ),
        ("payment_method_configurations", lambda c: c[0].update(card=OFF), "cards are off"),
        ("meters", lambda m: m.clear(), "catalog: no billing meter bp_api_calls"),
        ("prices", lambda p: p.pop("plan_pro_monthly"), "no price for plan_pro_monthly"),
        (
            "prices",
            lambda p: p["plan_pro_yearly"].update(unit_amount=1),
            "prices differ from catalog.toml: plan_pro_yearly",
        ),
    ],
)
def test_what_the_portal_needs_is_missing(
    catalog: Catalog, expected: Expected, name: str, change: Any, missing: str
) -> None:
    lines = report(_with(good_facts(catalog), name, change), expected)
    assert failed(lines)
    assert any(missing in line for line in _lines(lines, "MISSING")), lines


@pytest.mark.parametrize(
    ("name", "change", "warning"),
    [
        (
            "portal_configurations",
            lambda c: c[1]["features"]["subscription_pause"].update(enabled=True),
            "portal: customers can pause subscriptions",
        ),
        (
            "portal_configurations",
            lambda c: c[1]["features"]["customer_update"].update(allowed_updates=["email"]),
            "customers can change their email there",
        ),
        (
            "webhook_endpoints",
            lambda e: e.append({**e[0], "id": "we_2"}),
            "2 endpoints for https://billing.example.com/webhooks/stripe",
        ),
        (
            "payment_method_configurations",
            lambda c: c[0].update(klarna=_on()),
            "payment methods: also on: klarna",
        ),
        (
            "payment_method_configurations",
            lambda c: c[0].update(link=_on(available=False)),
            "on but not available (the account's capability is not active): link",
        ),
        ("account", lambda a: a["business_profile"].update(support_email=None), "no support email"),
        ("payment_method_configurations", lambda c: c.clear(), "no payment method configuration"),
    ],
)
def test_what_is_worth_a_look_is_a_warning(
    catalog: Catalog, expected: Expected, name: str, change: Any, warning: str
) -> None:
    lines = report(_with(good_facts(catalog), name, change), expected)
    assert not failed(lines), _lines(lines, "MISSING")
    assert any(warning in line for line in _lines(lines, "WARNING")), lines


def test_all_events_is_enough_and_a_cancel_free_portal_is_fine(
    catalog: Catalog, expected: Expected
) -> None:
    facts = _with(
        good_facts(catalog),
        "webhook_endpoints",
        _endpoint(lambda e: e.update(enabled_events=["*"])),
    )
    facts = _with(
        facts,
        "portal_configurations",
        lambda c: c[1]["features"]["subscription_cancel"].update(enabled=False, mode="immediately"),
    )
    lines = report(facts, expected)
    assert not failed(lines), _lines(lines, "MISSING")
    assert "OK      webhooks: all events (*); the app ignores the ones it does not use" in map(
        str, lines
    )


def test_a_test_key_warns_where_a_live_key_requires(catalog: Catalog, expected: Expected) -> None:
    facts = _with(good_facts(catalog), "account", lambda a: a.update(details_submitted=False))
    test_mode = report(facts, replace(expected, live_key=False))
    assert not failed(test_mode)
    assert any("a test mode key" in line for line in _lines(test_mode, "WARNING"))
    assert any("details are not submitted" in line for line in _lines(test_mode, "WARNING"))
    assert failed(report(facts, expected))


def test_live_webhooks_need_https(catalog: Catalog, expected: Expected) -> None:
    http = "http://billing.example.com/webhooks/stripe"
    facts = _with(good_facts(catalog), "webhook_endpoints", _endpoint(lambda e: e.update(url=http)))
    assert any(
        "is not https" in line
        for line in _lines(report(facts, replace(expected, webhook_url=http)), "MISSING")
    )
    assert not failed(report(facts, replace(expected, webhook_url=http, live_key=False)))


def test_the_webhook_secret(catalog: Catalog, expected: Expected) -> None:
    facts = good_facts(catalog)
    unset = report(facts, replace(expected, webhook_secret=None))
    assert any("STRIPE_WEBHOOK_SECRET is not set" in line for line in _lines(unset, "MISSING"))
    emulator = report(facts, replace(expected, webhook_secret=None, emulator=True, live_key=False))
    assert any("generated in VAR_DIR" in line for line in _lines(emulator, "OK"))
    odd = report(facts, replace(expected, webhook_secret="sk_live_oops"))
    assert any("does not start with whsec_" in line for line in _lines(odd, "WARNING"))


def test_what_could_not_be_read_is_named(catalog: Catalog, expected: Expected) -> None:
    refused = "The portal's Stripe key was refused. Please tell the administrator."
    facts = replace(
        good_facts(catalog),
        account=refused,
        portal_configurations=refused,
        webhook_endpoints=refused,
        payment_method_configurations=refused,
        prices=refused,
    )
    lines = report(facts, expected)
    missing = _lines(lines, "MISSING")
    assert f"MISSING account: could not read it: {refused}" in missing
    assert any(line.startswith("MISSING portal: could not read") for line in missing)
    assert any(line.startswith("MISSING webhooks: could not read") for line in missing)
    assert any(line.startswith("MISSING catalog: could not read the prices") for line in missing)
    assert any("payment methods: could not read" in line for line in _lines(lines, "WARNING"))
    assert summary(lines).startswith("4 missing, 1 warning(s)")


def test_required_events_are_the_handled_ones_that_a_webhook_endpoint_sends() -> None:
    events = required_events()
    assert {"checkout.session.completed", "invoice.paid", "customer.updated"} <= events
    assert not any(name.startswith(("v1.", "v2.")) for name in events)


def test_live_keys() -> None:
    assert is_live_key("sk_live_abc") and is_live_key("rk_live_abc")
    assert not is_live_key("sk_test_abc") and not is_live_key("sk_test_emulator")
