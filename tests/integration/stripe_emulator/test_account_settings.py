"""The account's settings through the SDK, as `billing-portal stripe-check` reads them: the
account, customer portal configurations, webhook endpoints, payment method configurations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe

from tests.integration.stripe_emulator.helpers import unique

API_VERSION = stripe.api_version
FEATURES: Any = {
    "customer_update": {"enabled": False},
    "invoice_history": {"enabled": True},
    "payment_method_update": {"enabled": True},
    "subscription_cancel": {"enabled": True},
    "subscription_update": {
        "enabled": True,
        "default_allowed_updates": ["price"],
        "products": [{"product": "prod_x", "prices": ["price_a", "price_b"]}],
    },
}


def _error(call: Any) -> dict[str, Any]:
    with pytest.raises(stripe.StripeError) as excinfo:
        call()
    body: Any = excinfo.value.json_body
    return dict(body["error"])


def test_the_account_is_an_activated_test_account(client: stripe.StripeClient) -> None:
    account = client.v1.accounts.retrieve_current()
    assert account.object == "account" and account.id.startswith("acct_")
    assert account.business_profile is not None and account.business_profile.name
    assert account.charges_enabled and account.details_submitted
    assert client.v1.accounts.retrieve_current().id == account.id  # the same one every time


@pytest.fixture
def account_restored(emulator: str) -> Iterator[None]:
    yield
    httpx.post(
        f"{emulator}/_emulator/account",
        data={
            "business_name": "Emulator test business",
            "support_email": "support@example.com",
            "charges_enabled": "true",
            "details_submitted": "true",
        },
    ).raise_for_status()


def test_the_dashboard_helper_changes_the_accounts_public_details(
    client: stripe.StripeClient, emulator: str, account_restored: None
) -> None:
    response = httpx.post(
        f"{emulator}/_emulator/account", data={"business_name": "", "charges_enabled": "false"}
    )
    assert response.status_code == 200
    account = client.v1.accounts.retrieve_current()
    assert account.business_profile is not None and account.business_profile.name is None
    assert account.charges_enabled is False and account.details_submitted is True


def test_a_portal_configuration_made_through_the_api_is_not_the_default(
    client: stripe.StripeClient,
) -> None:
    config = client.v1.billing_portal.configurations.create(params={"features": FEATURES})
    assert config.id.startswith("bpc_") and config.object == "billing_portal.configuration"
    assert config.is_default is False and config.active is True and config.livemode is False
    features = config.features
    assert features.subscription_update.enabled is True
    assert features.subscription_update.products is not None
    assert [p.prices for p in features.subscription_update.products] == [["price_a", "price_b"]]
    # What the request left out is Stripe's default.
    assert features.subscription_cancel.mode == "at_period_end"
    assert features.subscription_cancel.proration_behavior == "none"
    assert features.subscription_pause.enabled is False
    assert features.customer_update.allowed_updates == []

    updated = client.v1.billing_portal.configurations.update(
        config.id, params={"features": {"subscription_update": {"enabled": False}}}
    )
    assert updated.features.subscription_update.enabled is False
    assert updated.features.subscription_update.default_allowed_updates == ["price"]
    assert updated.features.invoice_history.enabled is True
    assert client.v1.billing_portal.configurations.retrieve(config.id).features == (
        updated.features
    )
    listed = client.v1.billing_portal.configurations.list(params={"limit": 100})
    assert config.id in [c.id for c in listed.data]


def test_portal_configurations_are_checked_as_stripe_checks_them(
    client: stripe.StripeClient,
) -> None:
    create = client.v1.billing_portal.configurations.create
    assert _error(lambda: create(params={}))["param"] == "features"  # type: ignore[typeddict-item]
    no_enabled: Any = {"customer_update": {"allowed_updates": ["email"]}}
    missing = _error(lambda: create(params={"features": no_enabled}))
    assert missing["code"] == "parameter_missing"
    assert missing["param"] == "features[customer_update][enabled]"
    unknown = _error(
        lambda: create(params={"features": {"subscription_update": {"enabled": True, "x": 1}}})  # type: ignore[typeddict-unknown-key]
    )
    assert unknown["code"] == "parameter_unknown"
    mode = _error(
        lambda: create(
            params={"features": {"subscription_cancel": {"enabled": True, "mode": "later"}}}
        )
    )
    assert mode["param"] == "features[subscription_cancel][mode]"


def test_the_dashboard_helper_makes_the_default_that_portal_sessions_use(
    client: stripe.StripeClient, emulator: str
) -> None:
    first = client.v1.billing_portal.configurations.create(params={"features": FEATURES})
    second = client.v1.billing_portal.configurations.create(params={"features": FEATURES})
    for config in (first, second):
        response = httpx.post(
            f"{emulator}/_emulator/billing_portal/configurations/{config.id}/default"
        )
        assert response.status_code == 200 and response.json()["is_default"] is True
    defaults = client.v1.billing_portal.configurations.list(params={"is_default": True})
    assert [c.id for c in defaults.data] == [second.id]
    assert client.v1.billing_portal.configurations.retrieve(first.id).is_default is False

    customer = client.v1.customers.create(params={"email": f"{unique('p')}@example.com"})
    session = client.v1.billing_portal.sessions.create(params={"customer": customer.id})
    assert session.configuration == second.id


def test_webhook_endpoints(client: stripe.StripeClient) -> None:
    url = f"https://{unique('hooks')}.example.com/webhooks/stripe"
    created = client.v1.webhook_endpoints.create(
        params={
            "url": url,
            "enabled_events": ["invoice.paid", "customer.updated"],
            "api_version": API_VERSION,  # type: ignore[typeddict-item]
            "description": "the portal",
        }
    )
    assert created.id.startswith("we_") and created.object == "webhook_endpoint"
    assert created.secret is not None and created.secret.startswith("whsec_")
    assert created.status == "enabled" and created.api_version == API_VERSION
    assert created.enabled_events == ["invoice.paid", "customer.updated"]

    found = client.v1.webhook_endpoints.retrieve(created.id)
    assert found.url == url and "secret" not in found  # shown at creation only
    assert created.id in [e.id for e in client.v1.webhook_endpoints.list(params={"limit": 100})]

    updated = client.v1.webhook_endpoints.update(
        created.id, params={"disabled": True, "enabled_events": ["*"]}
    )
    assert updated.status == "disabled" and updated.enabled_events == ["*"]

    deleted = client.v1.webhook_endpoints.delete(created.id)
    assert deleted.deleted is True
    assert _error(lambda: client.v1.webhook_endpoints.retrieve(created.id))["code"] == (
        "resource_missing"
    )


def test_webhook_endpoints_take_only_stripes_event_types_and_versions(
    client: stripe.StripeClient,
) -> None:
    create = client.v1.webhook_endpoints.create
    url = "https://example.com/webhooks/stripe"
    event = _error(lambda: create(params={"url": url, "enabled_events": ["invoice.nope"]}))  # type: ignore[list-item]
    assert event["param"] == "enabled_events[0]"
    version = _error(
        lambda: create(
            params={"url": url, "enabled_events": ["*"], "api_version": "2099-01-01"}  # type: ignore[typeddict-item]
        )
    )
    assert version["param"] == "api_version"
    assert _error(lambda: create(params={"url": url}))["param"] == "enabled_events"  # type: ignore[typeddict-item]
    assert _error(lambda: create(params={"url": "nowhere", "enabled_events": ["*"]}))["param"] == (
        "url"
    )


def test_the_default_payment_method_configuration_takes_cards(
    client: stripe.StripeClient,
) -> None:
    listed = client.v1.payment_method_configurations.list()
    [config] = listed.data
    assert config.object == "payment_method_configuration" and config.is_default
    assert config.card is not None and config.card.display_preference.value == "on"
    assert config.card.available is True
    assert config.link is not None and config.link.display_preference.value == "off"
    assert client.v1.payment_method_configurations.retrieve(config.id).id == config.id
    missing = _error(lambda: client.v1.payment_method_configurations.retrieve("pmc_nope"))
    assert missing["code"] == "resource_missing"
