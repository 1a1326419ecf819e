"""`billing-portal stripe-check`: what Stripe's API shows, with the configured key, of the
settings the portal needs before going live (docs/stripe.md, "Go-live checklist").

`fetch()` reads the account, the customer portal configurations, the webhook endpoints, the
payment method configurations, the billing meters and the catalog's prices through the
gateway, each read on its own (a key without permission for one is reported on that line).
`report()` turns what was read into `Line`s, OK / MISSING / WARNING: pure functions, so the
rules are unit-tested without Stripe. A MISSING line is something the portal needs; the
command exits 1 when there is one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from app.billing.catalog_sync import desired_meters, desired_products, price_matches
from app.catalog.models import Catalog
from app.stripe.gateway import StripeGateway, StripeGatewayError
from app.stripe.objects import (
    Account,
    PaymentMethodConfiguration,
    PortalConfiguration,
    WebhookEndpoint,
)
from app.stripe_sync.handlers import HANDLERS

Status = Literal["OK", "MISSING", "WARNING"]
Json = dict[str, Any]
T = TypeVar("T")

# The payment method types the portal's pages know by name; Checkout may save others.
APP_PAYMENT_METHOD_TYPES = ("card", "link", "sepa_debit", "us_bank_account")


def required_events() -> frozenset[str]:
    """The event types the webhook handles: each must reach `PUBLIC_URL/webhooks/stripe`.
    Thin (`v1.`/`v2.`) events go to an event destination, not a webhook endpoint."""
    return frozenset(name for name in HANDLERS if not name.startswith(("v1.", "v2.")))


@dataclass(frozen=True)
class Line:
    status: Status
    topic: str
    text: str

    def __str__(self) -> str:
        return f"{self.status:<8}{self.topic}: {self.text}"


@dataclass(frozen=True)
class Expected:
    """What this portal needs of Stripe: from the settings, the catalog and the code."""

    webhook_url: str
    events: frozenset[str]
    api_version: str
    live_key: bool
    emulator: bool
    webhook_secret: str | None  # None: not set in the environment
    catalog: Catalog


# What was read: the objects, or why they could not be read (the gateway's message).
@dataclass(frozen=True)
class StripeFacts:
    account: Account | str
    portal_configurations: list[PortalConfiguration] | str
    webhook_endpoints: list[WebhookEndpoint] | str
    payment_method_configurations: list[PaymentMethodConfiguration] | str
    meters: list[Json] | str
    prices: dict[str, Json] | str


def is_live_key(secret_key: str) -> bool:
    return secret_key.startswith(("sk_live_", "rk_live_"))


async def _read(call: Awaitable[T]) -> T | str:
    try:
        return await call
    except StripeGatewayError as exc:
        return exc.message


async def fetch(gateway: StripeGateway, catalog: Catalog) -> StripeFacts:
    meters = await _read(gateway.list_meters())
    prices: dict[str, Json] | str
    if isinstance(meters, str):
        prices = meters
    else:
        keys = [
            price.lookup_key
            for product in desired_products(catalog, _meter_ids(catalog, meters))
            for price in product.prices
        ]
        prices = await _read(gateway.prices_by_lookup_key(keys))
    return StripeFacts(
        account=await _read(gateway.retrieve_account()),
        portal_configurations=await _read(gateway.list_portal_configurations()),
        webhook_endpoints=await _read(gateway.list_webhook_endpoints()),
        payment_method_configurations=await _read(gateway.list_payment_method_configurations()),
        meters=meters,
        prices=prices,
    )


def report(facts: StripeFacts, expected: Expected) -> list[Line]:
    return [
        *key_lines(expected),
        *account_lines(facts.account, expected.live_key),
        *portal_lines(facts.portal_configurations),
        *webhook_lines(facts.webhook_endpoints, expected),
        *secret_lines(expected),
        *payment_method_lines(facts.payment_method_configurations),
        *catalog_lines(expected.catalog, facts.meters, facts.prices),
    ]


def failed(lines: Iterable[Line]) -> bool:
    return any(line.status == "MISSING" for line in lines)


def summary(lines: list[Line]) -> str:
    missing = sum(line.status == "MISSING" for line in lines)
    warnings = sum(line.status == "WARNING" for line in lines)
    if missing:
        return f"{missing} missing, {warnings} warning(s): see docs/stripe.md, Go-live checklist."
    return f"Nothing missing ({warnings} warning(s))."


# The key


def key_lines(expected: Expected) -> list[Line]:
    if expected.emulator:
        return [
            Line(
                "WARNING",
                "key",
                "no STRIPE_SECRET_KEY: this is the local emulator, not your Stripe account",
            )
        ]
    if not expected.live_key:
        return [
            Line(
                "WARNING",
                "key",
                "a test mode key: Stripe keeps test and live settings apart (portal, webhooks, "
                "catalog); run this again with the live key before going live",
            )
        ]
    return [Line("OK", "key", "a live mode key")]


# The account


def account_lines(account: Account | str, live_key: bool) -> list[Line]:
    topic = "account"
    if isinstance(account, str):
        return [Line("MISSING", topic, f"could not read it: {account}")]
    lines: list[Line] = []
    profile = account.get("business_profile") or {}
    dashboard = (account.get("settings") or {}).get("dashboard") or {}
    name = profile.get("name") or dashboard.get("display_name")
    if name:
        lines.append(Line("OK", topic, f"business name {name!r}"))
    else:
        lines.append(
            Line(
                "MISSING",
                topic,
                "no business name: set it in Settings → Business → Public details (customers "
                "see it on Checkout, the billing portal, receipts and invoices)",
            )
        )
    if not profile.get("support_email"):
        lines.append(
            Line("WARNING", topic, "no support email in the public details (shown on receipts)")
        )
    not_ready = [
        label
        for field, label in (
            ("charges_enabled", "charges are not enabled"),
            ("details_submitted", "the business details are not submitted"),
        )
        if not account.get(field)
    ]
    if not not_ready:
        lines.append(Line("OK", topic, "activated: charges enabled, details submitted"))
    else:
        lines.append(
            Line(
                "MISSING" if live_key else "WARNING",
                topic,
                " and ".join(not_ready) + ": activate the account before going live",
            )
        )
    return lines


# The customer portal


def _enabled(features: Any, name: str) -> bool:
    return bool(((features or {}).get(name) or {}).get("enabled"))


def portal_lines(configurations: list[PortalConfiguration] | str) -> list[Line]:
    topic = "portal"
    if isinstance(configurations, str):
        return [Line("MISSING", topic, f"could not read its configurations: {configurations}")]
    default = next((c for c in configurations if c.get("is_default")), None)
    if default is None:
        return [
            Line(
                "MISSING",
                topic,
                "no default configuration: save the customer portal settings (Settings → "
                "Billing → Customer portal), so a portal session opened from Stripe's side "
                "(its emails, the Dashboard) keeps the app's rules; the app itself links "
                "to its own billing page, which does all the portal does",
            )
        ]
    lines = [Line("OK", topic, f"default configuration {default['id']}")]
    if not default.get("active", True):
        lines.append(Line("MISSING", topic, f"{default['id']} is not active"))
    features = default.get("features") or {}
    if _enabled(features, "subscription_update"):
        lines.append(
            Line(
                "MISSING",
                topic,
                "customers can switch plans there: turn it off (the app reviews every plan "
                "change before it is made and moves downgrades to the period end; the portal "
                "would change plans past both)",
            )
        )
    else:
        lines.append(Line("OK", topic, "switching plans is off (the app's review page does it)"))
    if _enabled(features, "subscription_pause"):
        lines.append(
            Line(
                "WARNING",
                topic,
                "customers can pause subscriptions there: a paused plan has the free plan's "
                "limits in the app and only the portal resumes it; turn it off unless wanted",
            )
        )
    cancel = features.get("subscription_cancel") or {}
    if not cancel.get("enabled"):
        lines.append(Line("OK", topic, "cancellation is off (the app's Cancel plan does it)"))
    elif cancel.get("mode") == "immediately":
        lines.append(
            Line(
                "MISSING",
                topic,
                "cancellation ends plans immediately: set it to the end of the billing period, "
                "as the app's Cancel plan promises, or turn it off",
            )
        )
    else:
        lines.append(Line("OK", topic, "cancellation at the period end (as the app's Cancel plan)"))
    on = [
        label
        for name, label in (
            ("payment_method_update", "payment methods"),
            ("invoice_history", "invoice history"),
        )
        if _enabled(features, name)
    ]
    if on:
        lines.append(Line("OK", topic, " and ".join(on) + " on (the app follows their webhooks)"))
    customer_update = features.get("customer_update") or {}
    if customer_update.get("enabled") and "email" in (customer_update.get("allowed_updates") or []):
        lines.append(
            Line(
                "WARNING",
                topic,
                "customers can change their email there; the app keeps its own and does not "
                "follow it",
            )
        )
    return lines


# Webhooks


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def webhook_lines(endpoints: list[WebhookEndpoint] | str, expected: Expected) -> list[Line]:
    topic = "webhooks"
    url = expected.webhook_url
    if isinstance(endpoints, str):
        return [Line("MISSING", topic, f"could not read the endpoints: {endpoints}")]
    lines: list[Line] = []
    if expected.live_key and not url.startswith("https://"):
        lines.append(
            Line("MISSING", topic, f"{url} is not https: Stripe sends live events to https only")
        )
    matching = [e for e in endpoints if _same_url(e.get("url", ""), url)]
    if not matching:
        others = ", ".join(sorted(e.get("url", "") for e in endpoints))
        lines.append(
            Line(
                "MISSING",
                topic,
                f"no endpoint for {url} (Developers → Webhooks): add one with API version "
                f"{expected.api_version} and the events: {', '.join(sorted(expected.events))}"
                + (f" (endpoints found: {others})" if others else ""),
            )
        )
        return lines
    if len(matching) > 1:
        lines.append(
            Line(
                "WARNING",
                topic,
                f"{len(matching)} endpoints for {url}: each signs with its own secret and "
                "STRIPE_WEBHOOK_SECRET matches one, so the others' deliveries are refused; "
                "delete the extra ones",
            )
        )
    endpoint = next((e for e in matching if e.get("status") == "enabled"), matching[0])
    name = endpoint["id"]
    if endpoint.get("status") != "enabled":
        lines.append(Line("MISSING", topic, f"{name} ({url}) is disabled: enable it"))
    else:
        lines.append(Line("OK", topic, f"{name} sends to {url}"))
    enabled = set(endpoint.get("enabled_events") or [])
    missing = sorted(expected.events - enabled)
    if "*" in enabled:
        lines.append(Line("OK", topic, "all events (*); the app ignores the ones it does not use"))
    elif missing:
        lines.append(Line("MISSING", topic, f"{name} does not send: {', '.join(missing)}"))
    else:
        lines.append(Line("OK", topic, f"the {len(expected.events)} events the app handles"))
    version = endpoint.get("api_version")
    if version == expected.api_version:
        lines.append(Line("OK", topic, f"API version {version}, the SDK's"))
    else:
        shown = version or "the account's default"
        lines.append(
            Line(
                "MISSING",
                topic,
                f"{name} renders events in {shown}, the app's SDK in {expected.api_version}: an "
                "endpoint's version is fixed when it is made, so add a new endpoint with "
                f"{expected.api_version} (and use its signing secret)",
            )
        )
    return lines


def secret_lines(expected: Expected) -> list[Line]:
    topic = "webhook secret"
    secret = expected.webhook_secret
    if not secret:
        if expected.emulator:
            return [Line("OK", topic, "generated in VAR_DIR; the emulator signs with it")]
        return [
            Line(
                "MISSING",
                topic,
                "STRIPE_WEBHOOK_SECRET is not set: copy the endpoint's signing secret (whsec_...)",
            )
        ]
    if not secret.startswith("whsec_"):
        return [Line("WARNING", topic, "STRIPE_WEBHOOK_SECRET does not start with whsec_")]
    return [
        Line(
            "OK",
            topic,
            "STRIPE_WEBHOOK_SECRET is set (the API does not show endpoint secrets: check it "
            "is this endpoint's signing secret)",
        )
    ]


# Payment methods


def payment_method_types_on(config: PaymentMethodConfiguration) -> dict[str, bool]:
    """Each payment method type the configuration turns on, and whether it is `available`
    (on, and the account's capability for it active)."""
    fields: dict[str, Any] = dict(config)
    found: dict[str, bool] = {}
    for name, value in fields.items():
        if not isinstance(value, dict):
            continue
        preference = value.get("display_preference")
        if isinstance(preference, dict) and preference.get("value") == "on":
            found[name] = bool(value.get("available"))
    return found


def payment_method_lines(
    configurations: list[PaymentMethodConfiguration] | str,
) -> list[Line]:
    topic = "payment methods"
    if isinstance(configurations, str):
        return [Line("WARNING", topic, f"could not read their configuration: {configurations}")]
    active = [c for c in configurations if c.get("active", True)]
    config = next((c for c in active if c.get("is_default")), None) or next(
        (c for c in active if not c.get("parent")), None
    )
    if config is None:
        return [Line("WARNING", topic, "no payment method configuration visible to this key")]
    on = payment_method_types_on(config)
    lines: list[Line] = []
    if "card" not in on:
        lines.append(
            Line(
                "MISSING",
                topic,
                "cards are off: turn them on (Settings → Payments → Payment methods)",
            )
        )
    known = [kind for kind in APP_PAYMENT_METHOD_TYPES if kind in on]
    if known:
        lines.append(Line("OK", topic, "on: " + ", ".join(known)))
    other = sorted(kind for kind in on if kind not in APP_PAYMENT_METHOD_TYPES)
    if other:
        lines.append(
            Line(
                "WARNING",
                topic,
                f"also on: {', '.join(other)}; Checkout may offer them, and the app's pages "
                f"name only {', '.join(APP_PAYMENT_METHOD_TYPES)}",
            )
        )
    unavailable = sorted(kind for kind, available in on.items() if not available)
    if unavailable:
        lines.append(
            Line(
                "WARNING",
                topic,
                f"on but not available (the account's capability is not active): "
                f"{', '.join(unavailable)}",
            )
        )
    return lines


# The catalog


def _meter_ids(catalog: Catalog, meters: list[Json]) -> dict[str, str]:
    active = {
        str(m.get("event_name")): str(m["id"])
        for m in meters
        if m.get("status", "active") == "active"
    }
    return {
        want.meter_code: active[want.event_name]
        for want in desired_meters(catalog)
        if want.event_name in active
    }


def catalog_lines(
    catalog: Catalog, meters: list[Json] | str, prices: dict[str, Json] | str
) -> list[Line]:
    topic = "catalog"
    fix = "run billing-portal sync-catalog with this key"
    if isinstance(meters, str):
        return [Line("MISSING", topic, f"could not read the billing meters: {meters}")]
    if isinstance(prices, str):
        return [Line("MISSING", topic, f"could not read the prices: {prices}")]
    ids = _meter_ids(catalog, meters)
    wanted_meters = desired_meters(catalog)
    lines = [
        Line("MISSING", topic, f"no billing meter {want.event_name}: {fix}")
        for want in wanted_meters
        if want.meter_code not in ids
    ]
    wanted = [p for product in desired_products(catalog, ids) for p in product.prices]
    absent = [p.lookup_key for p in wanted if p.lookup_key not in prices]
    differ = [
        p.lookup_key
        for p in wanted
        if p.lookup_key in prices and not price_matches(prices[p.lookup_key], p)
    ]
    if absent:
        lines.append(Line("MISSING", topic, f"no price for {', '.join(absent)}: {fix}"))
    if differ:
        lines.append(
            Line("MISSING", topic, f"prices differ from catalog.toml: {', '.join(differ)}: {fix}")
        )
    if not lines:
        lines.append(
            Line(
                "OK",
                topic,
                f"{len(wanted)} prices and {len(wanted_meters)} billing meter(s) match "
                "catalog.toml",
            )
        )
    return lines
