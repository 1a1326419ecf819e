"""The real stripe SDK against the emulator: objects, lists, errors, idempotency."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.integration.stripe_emulator.conftest import Receiver
from tests.integration.stripe_emulator.helpers import (
    customer_with_card,
    monthly_price,
    sum_meter,
    unique,
)


def test_customer_create_retrieve_update_list(client: stripe.StripeClient) -> None:
    email = f"{unique('c')}@example.com"
    customer = client.v1.customers.create(
        params={"email": email, "name": "Ada", "metadata": {"user_id": "42"}}
    )
    assert customer.id.startswith("cus_")
    assert customer.object == "customer"
    assert customer.livemode is False
    assert customer.metadata["user_id"] == "42"

    fetched = client.v1.customers.retrieve(customer.id)
    assert fetched.email == email

    updated = client.v1.customers.update(
        customer.id, params={"name": "Ada L.", "metadata": {"plan": "pro", "user_id": ""}}
    )
    assert updated.name == "Ada L."
    assert updated.metadata.to_dict() == {"plan": "pro"}

    listed = client.v1.customers.list(params={"email": email})
    assert [c.id for c in listed.data] == [customer.id]
    assert listed.object == "list"
    assert listed.url == "/v1/customers"


async def test_async_methods(client: stripe.StripeClient) -> None:
    customer = await client.v1.customers.create_async(params={"email": "async@example.com"})
    fetched = await client.v1.customers.retrieve_async(customer.id)
    assert fetched.id == customer.id
    price = monthly_price(client)
    prices = await client.v1.prices.list_async(params={"product": price.product})
    assert [p.id for p in prices.data] == [price.id]


def test_products_and_prices_with_lookup_keys(client: stripe.StripeClient) -> None:
    key = unique("pro_monthly")
    price = monthly_price(client, 1500, lookup_key=key)
    assert price.id.startswith("price_")
    assert price.recurring.interval == "month"
    assert price.type == "recurring"
    assert price.unit_amount == 1500

    found = client.v1.prices.list(params={"lookup_keys": [key], "expand": ["data.product"]})
    assert [p.id for p in found.data] == [price.id]
    assert found.data[0].product.object == "product"

    with pytest.raises(stripe.InvalidRequestError) as taken:
        monthly_price(client, 1600, lookup_key=key)
    assert taken.value.param == "lookup_key"

    moved = monthly_price(client, 1600, lookup_key=key, transfer_lookup_key=True)
    assert [p.id for p in client.v1.prices.list(params={"lookup_keys": [key]}).data] == [moved.id]
    assert client.v1.prices.retrieve(price.id).lookup_key is None

    product = client.v1.products.update(price.product, params={"name": "Renamed"})
    assert client.v1.products.retrieve(product.id).name == "Renamed"


def test_pagination(client: stripe.StripeClient) -> None:
    marker = unique("page")
    created = [client.v1.products.create(params={"name": f"{marker}-{i}"}).id for i in range(3)]
    newest_first = list(reversed(created))
    page = client.v1.products.list(params={"limit": 2, "ids": created})
    assert [p.id for p in page.data] == newest_first[:2]
    assert page.has_more is True
    rest = client.v1.products.list(
        params={"limit": 2, "ids": created, "starting_after": page.data[-1].id}
    )
    assert [p.id for p in rest.data] == newest_first[2:]
    assert rest.has_more is False
    before = client.v1.products.list(params={"ids": created, "ending_before": newest_first[2]})
    assert [p.id for p in before.data] == newest_first[:2]
    everything = [p.id for p in page.auto_paging_iter()]
    assert everything == newest_first


def test_subscription_lifecycle(client: stripe.StripeClient, receiver: Receiver) -> None:
    price = monthly_price(client, 2000)
    upgrade = monthly_price(client, 5000)
    customer, _pm = customer_with_card(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price.id}],
            "metadata": {"plan": "pro"},
            "expand": ["latest_invoice"],
        }
    )
    assert sub.id.startswith("sub_")
    assert sub.status == "active"
    item = sub["items"].data[0]
    assert item.id.startswith("si_")
    assert item.current_period_end > item.current_period_start
    invoice = sub.latest_invoice
    assert invoice.status == "paid"
    assert invoice.amount_paid == 2000
    assert invoice.parent.subscription_details.subscription == sub.id
    assert invoice.hosted_invoice_url and invoice.invoice_pdf

    changed = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "price": upgrade.id}],
            "proration_behavior": "always_invoice",
            "cancel_at_period_end": True,
            "metadata": {"changed": "yes"},
        },
    )
    assert changed["items"].data[0].price.id == upgrade.id
    assert changed.cancel_at_period_end is True
    assert changed.metadata["changed"] == "yes"
    proration = client.v1.invoices.retrieve(changed.latest_invoice)
    assert proration.billing_reason == "subscription_update"
    assert proration.status == "paid"
    assert 2900 <= proration.amount_paid <= 3000

    updated = receiver.wait_for_event(
        "customer.subscription.updated",
        lambda obj: obj["id"] == sub.id and obj["cancel_at_period_end"],
    )
    assert updated["data"]["previous_attributes"]["cancel_at_period_end"] is False

    listed = client.v1.subscriptions.list(params={"customer": customer.id})
    assert [s.id for s in listed.data] == [sub.id]
    items = client.v1.subscription_items.list(params={"subscription": sub.id})
    assert items.data[0].price.id == upgrade.id

    canceled = client.v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled"
    assert client.v1.subscriptions.list(params={"customer": customer.id}).data == []
    assert (
        len(client.v1.subscriptions.list(params={"customer": customer.id, "status": "all"}).data)
        == 1
    )
    receiver.wait_for_event("customer.subscription.deleted", lambda obj: obj["id"] == sub.id)

    invoices = client.v1.invoices.list(params={"subscription": sub.id})
    assert {i.billing_reason for i in invoices.data} == {
        "subscription_create",
        "subscription_update",
    }


def test_payment_methods(client: stripe.StripeClient, receiver: Receiver) -> None:
    customer, visa = customer_with_card(client)
    assert visa.id.startswith("pm_")
    assert visa.card.last4 == "4242"
    assert visa.customer == customer.id
    assert customer.invoice_settings.default_payment_method == visa.id

    expanded = client.v1.customers.retrieve(
        customer.id, params={"expand": ["invoice_settings.default_payment_method"]}
    )
    assert expanded.invoice_settings.default_payment_method.card.brand == "visa"

    master = client.v1.payment_methods.attach(
        "pm_card_mastercard", params={"customer": customer.id}
    )
    listed = client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    assert {p.id for p in listed.data} == {visa.id, master.id}
    assert client.v1.payment_methods.retrieve(master.id).card.brand == "mastercard"

    detached = client.v1.payment_methods.detach(visa.id)
    assert detached.customer is None
    assert client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method is None
    receiver.wait_for_event("payment_method.detached", lambda obj: obj["id"] == visa.id)

    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_methods.attach(
            "pm_card_visa_chargeDeclined", params={"customer": customer.id}
        )
    assert declined.value.code == "card_declined"
    assert declined.value.error.decline_code == "generic_decline"


def test_error_shapes(client: stripe.StripeClient, emulator: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.customers.retrieve("cus_doesnotexist")
    assert unknown.value.http_status == 404
    assert unknown.value.code == "resource_missing"
    assert unknown.value.param == "id"
    assert "No such customer: 'cus_doesnotexist'" in unknown.value.user_message

    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.products.create(params={"description": "no name"})
    assert missing.value.http_status == 400
    assert missing.value.code == "parameter_missing"
    assert missing.value.param == "name"

    response = httpx.get(f"{emulator}/v1/foo", headers={"Authorization": "Bearer sk_test_x"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("Unrecognized request URL (GET: /v1/foo)")

    assert httpx.get(f"{emulator}/v1/customers").status_code == 401
    live = stripe.StripeClient(
        "sk_live_nope", base_addresses={"api": emulator}, max_network_retries=0
    )
    with pytest.raises(stripe.AuthenticationError):
        live.v1.customers.list()


def test_idempotency_keys(client: stripe.StripeClient) -> None:
    key = unique("idem")
    first = client.v1.customers.create(
        params={"email": "same@example.com"}, options={"idempotency_key": key}
    )
    replay = client.v1.customers.create(
        params={"email": "same@example.com"}, options={"idempotency_key": key}
    )
    assert replay.id == first.id
    assert replay.last_response.headers.get("idempotent-replayed") == "true"

    with pytest.raises(stripe.IdempotencyError) as mismatch:
        client.v1.customers.create(
            params={"email": "other@example.com"}, options={"idempotency_key": key}
        )
    assert mismatch.value.http_status == 400
    assert mismatch.value.error.type == "idempotency_error"


def test_events_list_and_retrieve(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "events@example.com"})
    events = client.v1.events.list(params={"type": "customer.created", "limit": 100})
    event = next(e for e in events.data if e.data.object.id == customer.id)
    assert event.id.startswith("evt_")
    assert event.object == "event"
    assert event.api_version
    assert event.livemode is False
    assert event.request.id.startswith("req_")
    again = client.v1.events.retrieve(event.id)
    assert again.type == "customer.created"
    assert again.data.object.email == "events@example.com"


def test_billing_meters_and_events(client: stripe.StripeClient) -> None:
    name = unique("api_calls")
    meter = sum_meter(client, "API calls", name)
    assert meter.id.startswith("mtr_")
    assert meter.object == "billing.meter"
    assert meter.id in {m.id for m in client.v1.billing.meters.list().data}

    customer = client.v1.customers.create(params={"email": "meter@example.com"})
    payload = {"stripe_customer_id": customer.id, "value": "5"}
    first = client.v1.billing.meter_events.create(
        params={"event_name": name, "payload": payload, "identifier": "evt-1"}
    )
    assert first.identifier == "evt-1"
    client.v1.billing.meter_events.create(
        params={"event_name": name, "payload": payload, "identifier": "evt-1"}
    )
    client.v1.billing.meter_events.create(
        params={"event_name": name, "payload": {**payload, "value": "2"}}
    )
    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id,
        params={
            "customer": customer.id,
            "start_time": first.timestamp - 60,
            "end_time": first.timestamp + 3600,
        },
    )
    assert summaries.data[0].aggregated_value == 7


def test_payment_and_setup_intent_retrieval_need_real_ids(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing_pi:
        client.v1.payment_intents.retrieve("pi_missing")
    assert missing_pi.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.setup_intents.retrieve("seti_missing")
