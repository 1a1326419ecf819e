"""Billing details at the emulator (issue 19, item 6): customer tax IDs validated as Stripe
validates them, invoices carrying the customer's details, promotion codes (TEST20) and
automatic tax (the fixed 10 % test rate), in Checkout, subscriptions and previews."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.integration.stripe_emulator.conftest import Receiver
from tests.integration.stripe_emulator.helpers import customer_with_card, monthly_price, unique

VISA = {"card_number": "4242 4242 4242 4242", "exp_date": "12 / 34", "cvc": "123"}
SUCCESS = "https://portal.test/billing/success?session={CHECKOUT_SESSION_ID}"
CANCEL = "https://portal.test/billing/plans"
ADDRESS = {
    "line1": "Unter den Linden 1",
    "city": "Berlin",
    "postal_code": "10117",
    "country": "DE",
}


@pytest.mark.parametrize(
    ("tax_type", "value", "country"),
    [
        ("eu_vat", "DE123456789", "DE"),
        ("eu_vat", "ATU12345678", "AT"),
        ("eu_vat", "BE0123456789", "BE"),
        ("gb_vat", "GB123456789", "GB"),
        ("us_ein", "12-3456789", "US"),
        ("au_abn", "12345678912", "AU"),
        ("ca_bn", "123456789", "CA"),
        ("ch_vat", "CHE-123.456.789 MWST", "CH"),
        ("in_gst", "12ABCDE3456FGZH", "IN"),
        ("no_vat", "123456789MVA", "NO"),
        ("br_cnpj", "01.234.456/5432-10", "BR"),
    ],
)
def test_stripe_documented_tax_ids_are_accepted(
    client: stripe.StripeClient, tax_type: str, value: str, country: str
) -> None:
    customer = client.v1.customers.create(params={"email": f"{unique('tax')}@example.com"})
    tax_id = client.v1.customers.tax_ids.create(
        customer.id, params={"type": tax_type, "value": value}
    )
    assert tax_id.id.startswith("txi_")
    assert (tax_id.object, tax_id.type, tax_id.value) == ("tax_id", tax_type, value)
    assert tax_id.country == country
    assert tax_id.customer == customer.id
    listed = client.v1.customers.tax_ids.list(customer.id)
    assert [t.id for t in listed.data] == [tax_id.id]


@pytest.mark.parametrize(
    ("tax_type", "value"),
    [("eu_vat", "DE12345"), ("eu_vat", "123456789"), ("gb_vat", "GB12"), ("us_ein", "123456789")],
)
def test_malformed_tax_ids_get_stripes_error(
    client: stripe.StripeClient, tax_type: str, value: str
) -> None:
    customer = client.v1.customers.create(params={"email": f"{unique('tax')}@example.com"})
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.tax_ids.create(customer.id, params={"type": tax_type, "value": value})
    error = raised.value
    assert error.http_status == 400
    assert error.code == "tax_id_invalid"
    assert error.param == "value"
    assert error.user_message == f"Invalid value for {tax_type}."
    assert client.v1.customers.tax_ids.list(customer.id).data == []


def test_a_tax_id_type_the_emulator_does_not_know_is_refused(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create(params={"email": f"{unique('tax')}@example.com"})
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.tax_ids.create(customer.id, params={"type": "zz_nope", "value": "1"})
    assert raised.value.param == "type"


def test_verification_follows_the_test_numbers(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": f"{unique('tax')}@example.com"})
    create = client.v1.customers.tax_ids.create
    verified = create(customer.id, params={"type": "eu_vat", "value": "DE000000000"})
    unverified = create(customer.id, params={"type": "eu_vat", "value": "DE111111111"})
    pending = create(customer.id, params={"type": "eu_vat", "value": "DE123456789"})
    unchecked = create(customer.id, params={"type": "us_ein", "value": "12-3456789"})
    assert verified.verification.status == "verified"
    assert unverified.verification.status == "unverified"
    assert pending.verification.status == "pending"
    assert unchecked.verification is None


def test_tax_ids_are_deleted_with_events(client: stripe.StripeClient, receiver: Receiver) -> None:
    customer = client.v1.customers.create(params={"email": f"{unique('tax')}@example.com"})
    tax_id = client.v1.customers.tax_ids.create(
        customer.id, params={"type": "gb_vat", "value": "GB123456789"}
    )
    receiver.wait_for_event("customer.tax_id.created", lambda o: o["id"] == tax_id.id)
    deleted = client.v1.customers.tax_ids.delete(customer.id, tax_id.id)
    assert deleted.deleted is True
    receiver.wait_for_event("customer.tax_id.deleted", lambda o: o["id"] == tax_id.id)
    assert client.v1.customers.tax_ids.list(customer.id).data == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.tax_ids.retrieve(customer.id, tax_id.id)


def test_an_invoice_carries_the_customers_details_from_its_finalization(
    client: stripe.StripeClient,
) -> None:
    customer, _ = customer_with_card(client, name="Acme GmbH", address=ADDRESS)
    client.v1.customers.tax_ids.create(
        customer.id, params={"type": "eu_vat", "value": "DE123456789"}
    )
    price = monthly_price(client, 1000)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert invoice.customer_name == "Acme GmbH"
    assert invoice.customer_address.city == "Berlin"
    assert invoice.customer_address.country == "DE"
    assert [(t.type, t.value) for t in invoice.customer_tax_ids] == [("eu_vat", "DE123456789")]
    # A finalized invoice keeps what it carried.
    client.v1.customers.update(customer.id, params={"name": "Renamed Ltd"})
    assert client.v1.invoices.retrieve(invoice.id).customer_name == "Acme GmbH"


def test_the_test_promotion_code_exists_with_stripes_shapes(client: stripe.StripeClient) -> None:
    codes = client.v1.promotion_codes.list(params={"code": "TEST20"}).data
    assert len(codes) == 1
    promo = codes[0]
    assert promo.object == "promotion_code" and promo.active
    coupon = client.v1.coupons.retrieve(promo.promotion.coupon)
    assert coupon.object == "coupon"
    assert coupon.percent_off == 20
    assert coupon.valid is True


def test_coupons_and_promotion_codes_can_be_made(client: stripe.StripeClient) -> None:
    coupon = client.v1.coupons.create(params={"percent_off": 50, "duration": "once"})
    code = unique("HALF").upper()
    promo = client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": coupon.id}, "code": code}
    )
    assert promo.code == code and promo.promotion.coupon == coupon.id
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.promotion_codes.create(
            params={"promotion": {"type": "coupon", "coupon": coupon.id}, "code": code}
        )
    assert raised.value.code == "resource_already_exists"


def _session(
    client: stripe.StripeClient, amount: int = 2500, **extra: object
) -> stripe.checkout.Session:
    customer = extra.pop("customer_obj", None) or client.v1.customers.create(
        params={"email": f"{unique('buyer')}@example.com"}
    )
    price = monthly_price(client, amount)
    return client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": SUCCESS,
            "cancel_url": CANCEL,
            **extra,
        }
    )


def test_checkout_with_the_test_promotion_code_takes_20_percent_off(
    client: stripe.StripeClient,
) -> None:
    session = _session(client, allow_promotion_codes=True)
    assert session.allow_promotion_codes is True
    page = httpx.get(session.url)
    assert 'data-testid="promotion-code"' in page.text

    wrong = httpx.post(f"{session.url}/promotion_code", data={"code": "NOPE"})
    assert wrong.status_code == 400 and "This code is invalid." in wrong.text

    applied = httpx.post(f"{session.url}/promotion_code", data={"code": "test20"})
    assert applied.status_code == 303
    page = httpx.get(session.url)
    assert "20.00 USD" in page.text and "−5.00 USD" in page.text
    reread = client.v1.checkout.sessions.retrieve(session.id)
    assert reread.amount_total == 2000
    assert reread.total_details.amount_discount == 500

    assert httpx.post(session.url, data=VISA).status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription"]})
    assert len(done.subscription.discounts) == 1
    invoice = client.v1.invoices.retrieve(done.invoice)
    assert (invoice.subtotal, invoice.total, invoice.amount_paid) == (2500, 2000, 2000)
    assert invoice.total_discount_amounts[0].amount == 500
    assert invoice.total_discount_amounts[0].discount == done.subscription.discounts[0]
    line = invoice.lines.data[0]
    assert line.discount_amounts[0].amount == 500
    # A renewal is discounted too (the test coupon lasts forever).
    preview = client.v1.invoices.create_preview(params={"subscription": done.subscription.id})
    assert preview.total == 2000


def test_promotion_codes_are_refused_when_not_allowed(client: stripe.StripeClient) -> None:
    session = _session(client)
    assert 'data-testid="promotion-code"' not in httpx.get(session.url).text
    refused = httpx.post(f"{session.url}/promotion_code", data={"code": "TEST20"})
    assert refused.status_code == 400


def test_automatic_tax_adds_the_test_rate(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(
        params={"email": f"{unique('tax')}@example.com", "address": ADDRESS}
    )
    session = _session(client, 2000, customer_obj=customer, automatic_tax={"enabled": True})
    assert session.automatic_tax.enabled is True
    assert session.amount_total == 2200 and session.total_details.amount_tax == 200
    assert httpx.post(session.url, data=VISA).status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription"]})
    assert done.subscription.automatic_tax.enabled is True
    invoice = client.v1.invoices.retrieve(done.invoice)
    assert invoice.automatic_tax.status == "complete"
    assert (invoice.subtotal, invoice.total_excluding_tax, invoice.total) == (2000, 2000, 2200)
    assert invoice.total_taxes[0].amount == 200
    assert invoice.total_taxes[0].taxable_amount == 2000
    assert invoice.amount_paid == 2200


def test_discount_then_tax(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(
        params={"email": f"{unique('tax')}@example.com", "address": ADDRESS}
    )
    session = _session(
        client,
        2500,
        customer_obj=customer,
        automatic_tax={"enabled": True},
        allow_promotion_codes=True,
    )
    httpx.post(f"{session.url}/promotion_code", data={"code": "TEST20"})
    assert httpx.post(session.url, data=VISA).status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id)
    invoice = client.v1.invoices.retrieve(done.invoice)
    # 25.00 - 20 % = 20.00, + 10 % tax = 22.00
    assert (invoice.subtotal, invoice.total) == (2500, 2200)
    assert invoice.total_discount_amounts[0].amount == 500
    assert invoice.total_taxes[0].amount == 200


def test_automatic_tax_on_subscription_updates_and_previews(client: stripe.StripeClient) -> None:
    customer, _ = customer_with_card(client, address=ADDRESS)
    price = monthly_price(client, 1000)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    assert client.v1.invoices.retrieve(sub.latest_invoice).total == 1000
    preview = client.v1.invoices.create_preview(
        params={"subscription": sub.id, "automatic_tax": {"enabled": True}}
    )
    assert preview.total == 1100 and preview.automatic_tax.status == "complete"
    updated = client.v1.subscriptions.update(sub.id, params={"automatic_tax": {"enabled": True}})
    assert updated.automatic_tax.enabled is True
    assert client.v1.invoices.create_preview(params={"subscription": sub.id}).total == 1100
    created = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": monthly_price(client, 500).id}],
            "automatic_tax": {"enabled": True},
        }
    )
    assert client.v1.invoices.retrieve(created.latest_invoice).total == 550


def test_checkout_needs_customer_update_to_collect_for_an_existing_customer(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        _session(client, tax_id_collection={"enabled": True})
    assert raised.value.param == "customer_update[name]"
    with pytest.raises(stripe.InvalidRequestError) as raised:
        _session(client, automatic_tax={"enabled": True})
    assert raised.value.param == "customer_update[address]"
    with pytest.raises(stripe.InvalidRequestError) as raised:
        _session(client, billing_address_collection="sometimes")
    assert raised.value.param == "billing_address_collection"


def test_checkout_collects_the_address_and_a_tax_id(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    session = _session(
        client,
        billing_address_collection="required",
        tax_id_collection={"enabled": True},
        customer_update={"address": "auto", "name": "auto"},
    )
    assert session.billing_address_collection == "required"
    assert session.tax_id_collection.enabled is True
    page = httpx.get(session.url)
    assert 'name="address_line1"' in page.text and 'name="tax_id_value"' in page.text
    address = {f"address_{k}": v for k, v in ADDRESS.items()}
    form = {**VISA, **address, "business_name": "Acme GmbH", "tax_id_type": "eu_vat"}

    bad = httpx.post(session.url, data={**form, "tax_id_value": "DE12"})
    assert bad.status_code == 400 and "Invalid value for eu_vat." in bad.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"

    done = httpx.post(session.url, data={**form, "tax_id_value": "DE123456789"})
    assert done.status_code == 303
    completed = client.v1.checkout.sessions.retrieve(session.id)
    assert completed.customer_details.address.country == "DE"
    assert completed.customer_details.name == "Acme GmbH"
    assert completed.customer_details.tax_ids[0].value == "DE123456789"
    customer = client.v1.customers.retrieve(completed.customer)
    assert customer.name == "Acme GmbH" and customer.address.city == "Berlin"
    tax_ids = client.v1.customers.tax_ids.list(customer.id).data
    assert [(t.type, t.value) for t in tax_ids] == [("eu_vat", "DE123456789")]
    invoice = client.v1.invoices.retrieve(completed.invoice)
    assert invoice.customer_name == "Acme GmbH"
    assert invoice.customer_tax_ids[0].value == "DE123456789"
    receiver.wait_for_event("customer.tax_id.created", lambda o: o["customer"] == customer.id)
