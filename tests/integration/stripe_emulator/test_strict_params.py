"""The emulator refuses what Stripe refuses: unknown parameters, unknown enum values, a metered
price without a meter, too many lookup keys; Checkout's ui_mode is the pinned API version's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from tests.integration.stripe_emulator.helpers import customer_with_card, monthly_price, unique


def _error(exc: pytest.ExceptionInfo[stripe.StripeError]) -> dict[str, Any]:
    assert exc.value.http_status == 400
    body = exc.value.json_body
    assert body is not None
    return dict(body["error"])


def _create_price(client: stripe.StripeClient, **recurring: str) -> None:
    """A price for a fresh product with `recurring` as given (the SDK's types bypassed)."""
    product = client.v1.products.create(params={"name": unique("P")})
    params: Any = {"product": product.id, "currency": "usd", "unit_amount": 100}
    client.v1.prices.create(params={**params, "recurring": recurring})


def test_unknown_top_level_parameter(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.customers.create(params={"email": "a@example.com", "emial": "typo"})
    error = _error(exc)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "parameter_unknown"
    assert error["message"] == "Received unknown parameter: emial"
    assert error["param"] == "emial"
    assert exc.value.code == "parameter_unknown"
    assert not client.v1.customers.list(params={"email": "a@example.com"}).data


def test_unknown_nested_parameters(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        _create_price(client, interval="month", foo="1")
    assert _error(exc)["param"] == "recurring[foo]"
    assert _error(exc)["message"] == "Received unknown parameter: recurring[foo]"

    customer, _ = customer_with_card(client)
    price = monthly_price(client)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": price.id, "qty": 2}]}
        )
    assert _error(exc)["param"] == "items[0][qty]"
    assert not client.v1.subscriptions.list(params={"customer": customer.id}).data


def test_unknown_query_parameter_on_a_list(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.invoices.list(params={"customr": "cus_x"})
    assert _error(exc)["param"] == "customr"


def test_enum_values_stripe_does_not_know(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        _create_price(client, interval="fortnight")
    error = _error(exc)
    assert error["message"] == "Invalid interval: must be one of day, month, week, or year"
    assert error["param"] == "recurring[interval]"

    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.subscriptions.list(params={"status": "cancelled"})
    assert _error(exc)["param"] == "status"
    assert "must be one of active, all, canceled" in _error(exc)["message"]


def test_a_metered_price_needs_a_meter(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        _create_price(client, interval="month", usage_type="metered")
    error = _error(exc)
    assert error["code"] == "parameter_missing"
    assert error["param"] == "recurring[meter]"


def test_at_most_ten_lookup_keys(client: stripe.StripeClient) -> None:
    keys = [unique("k") for _ in range(11)]
    assert client.v1.prices.list(params={"lookup_keys": keys[:10]}).data == []
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.prices.list(params={"lookup_keys": keys})
    assert _error(exc)["param"] == "lookup_keys"


def test_checkout_ui_mode_is_the_pinned_versions(client: stripe.StripeClient) -> None:
    price = monthly_price(client)
    base: Any = {
        "mode": "subscription",
        "line_items": [{"price": price.id, "quantity": 1}],
        "success_url": "http://example.com/ok",
    }
    session = client.v1.checkout.sessions.create(params=base)
    assert session.ui_mode == "hosted_page"
    assert client.v1.checkout.sessions.create(params={**base, "ui_mode": "hosted_page"}).url
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.create(params={**base, "ui_mode": "hosted"})
    assert _error(exc)["param"] == "ui_mode"
    assert _error(exc)["message"] == (
        "Invalid ui_mode: must be one of elements, embedded_page, form, or hosted_page"
    )


def test_every_parameter_the_gateway_sends_is_accepted(client: stripe.StripeClient) -> None:
    """The Checkout parameters app/stripe/gateway.py sends in each mode (the rest of what it
    sends is covered by tests/integration/stripe and tests/integration/billing)."""
    customer, _ = customer_with_card(client)
    metadata = {"user_id": "1"}
    common: Any = {
        "customer": customer.id,
        "client_reference_id": "1",
        "success_url": "http://example.com/ok",
        "cancel_url": "http://example.com/no",
        "metadata": metadata,
    }
    price = monthly_price(client)
    client.v1.checkout.sessions.create(
        params={
            **common,
            "mode": "subscription",
            "line_items": [{"price": price.id, "quantity": 1}],
            "subscription_data": {
                "metadata": metadata,
                "billing_mode": {"type": "flexible"},
                "trial_period_days": 7,
            },
        }
    )
    one_time = client.v1.prices.create(
        params={"product": price.product, "currency": "usd", "unit_amount": 500}  # type: ignore[typeddict-item]
    )
    client.v1.checkout.sessions.create(
        params={
            **common,
            "mode": "payment",
            "line_items": [{"price": one_time.id, "quantity": 1}],
            "payment_intent_data": {"metadata": metadata},
            "invoice_creation": {"enabled": True, "invoice_data": {"metadata": metadata}},
        }
    )
    client.v1.checkout.sessions.create(
        params={
            **common,
            "mode": "setup",
            "setup_intent_data": {"metadata": metadata},
            "currency": "usd",
        }
    )


def test_errors_reach_raw_http_clients_too(emulator: str) -> None:
    response = httpx.post(
        f"{emulator}/v1/customers",
        data={"metadata[a]": "1", "bogus[deep][er]": "x"},
        headers={"Authorization": "Bearer sk_test_x"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "bogus"
