"""The billing details page (issue 19, item 6) against a real emulator: details saved to the
Stripe customer and mirrored, tax IDs validated by Stripe (its message on the form, 422),
kept in sync by `customer.updated` / `customer.tax_id.*`, carried by invoices; and Checkout
with the settings for address and tax ID collection, promotion codes and automatic tax."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
import structlog
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.daily_reconcile import reconcile_all
from app.billing.models import BillingDetails, CustomerTaxId, Invoice
from app.billing.service import BillingService
from app.catalog.models import Catalog
from app.config import Settings
from app.customers.models import Customer
from app.db.engine import write_from_here
from app.stripe.gateway import StripeGateway, StripeGatewayError
from tests.conftest import sibling_client
from tests.integration.stripe.conftest import (
    VISA,
    Emulator,
    customer_of,
    forward,
    login_new_user,
    post_form,
    review_plan_change,
    running_emulator,
    wait_for_events,
)
from tests.integration.stripe_emulator.conftest import WEBHOOK_SECRET as EMULATOR_SECRET
from tests.support import make_settings

DETAILS = {
    "name": "Acme GmbH",
    "line1": "Unter den Linden 1",
    "line2": "",
    "city": "Berlin",
    "postal_code": "10117",
    "state": "",
    "country": "DE",
    "invoice_email": "billing@acme.example",
}
# DETAILS' address as the Stripe customer has it.
STRIPE_ADDRESS = {
    "line1": "Unter den Linden 1",
    "line2": None,
    "city": "Berlin",
    "postal_code": "10117",
    "state": None,
    "country": "DE",
}
ADDRESS_FORM = {
    "address_line1": "Unter den Linden 1",
    "address_city": "Berlin",
    "address_postal_code": "10117",
    "address_country": "DE",
}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with running_emulator(tmp_path_factory.mktemp("billing-details-emulator")) as emulator:
        yield emulator


@pytest.fixture
def checkout_settings() -> dict[str, Any]:
    """The Checkout settings of the test's app (a test parametrizes this to turn them on)."""
    return {}


@pytest.fixture
def settings(
    var_dir: Path, database_url: str, emulator: Emulator, checkout_settings: dict[str, Any]
) -> Settings:
    return make_settings(
        var_dir,
        database_url,
        stripe_api_base=emulator.url,
        stripe_webhook_secret=EMULATOR_SECRET,
        **checkout_settings,
    )


@pytest.fixture
def gateway(settings: Settings) -> StripeGateway:
    return StripeGateway.from_settings(settings)


async def _stripe_customer(
    client: AsyncTestClient[Litestar], session: AsyncSession, email: str
) -> str:
    customer, _ = await customer_of(session, email)
    assert customer.stripe_customer_id
    return customer.stripe_customer_id


def _shown_tax_ids(page: str) -> list[str]:
    return re.findall(r'data-testid="tax-id-value">([^<]+)<', page)


async def _save(client: AsyncTestClient[Litestar], **changes: str) -> httpx.Response:
    return await post_form(client, "/billing/details", {**DETAILS, **changes})


async def _add_tax_id(
    client: AsyncTestClient[Litestar], value: str, tax_type: str = "eu_vat"
) -> httpx.Response:
    return await post_form(
        client, "/billing/details/tax-ids", {"tax_id_type": tax_type, "tax_id_value": value}
    )


async def test_details_are_saved_to_the_stripe_customer_and_mirrored(
    client: AsyncTestClient[Litestar], session: AsyncSession, gateway: StripeGateway
) -> None:
    await login_new_user(client, "details@example.com")
    empty = await client.get("/billing/details")
    assert empty.status_code == 200
    assert 'data-testid="billing-details-empty"' in empty.text

    response = await _save(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/billing/details"

    stripe_id = await _stripe_customer(client, session, "details@example.com")
    remote = await gateway.retrieve_customer(stripe_id)
    assert remote["name"] == "Acme GmbH"
    assert remote["email"] == "billing@acme.example"
    assert remote.get("address") == STRIPE_ADDRESS
    customer, _ = await customer_of(session, "details@example.com")
    row = await session.get(BillingDetails, customer.id)
    assert row is not None
    assert (row.name, row.city, row.country, row.invoice_email) == (
        "Acme GmbH",
        "Berlin",
        "DE",
        "billing@acme.example",
    )
    page = (await client.get("/billing/details")).text
    assert "Acme GmbH" in page and "10117 Berlin" in page and "Germany" in page
    assert 'value="billing@acme.example"' in page

    # Emptied: the address and the name unset at Stripe, invoices go to the account's email.
    blank = dict.fromkeys(DETAILS, "")
    assert (await post_form(client, "/billing/details", blank)).status_code == 303
    remote = await gateway.retrieve_customer(stripe_id)
    assert (remote["name"], remote.get("address"), remote["email"]) == (
        None,
        None,
        "details@example.com",
    )
    await customer_of(session, "details@example.com")  # a fresh snapshot
    row = await session.get(BillingDetails, customer.id)
    assert row is not None
    assert (row.name, row.line1, row.invoice_email) == (None, None, None)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"country": "XX"}, "country", "Choose a country from the list."),
        ({"line1": ""}, "line1", "Enter the first line of the address."),
        ({"country": ""}, "country", "Choose the country of the address."),
        ({"invoice_email": "not-an-email"}, "invoice_email", "Enter a valid email address"),
        ({"name": "x" * 300}, "name", "at most 255 characters"),
    ],
)
async def test_invalid_details_are_refused_on_their_field(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    await login_new_user(client, "bad-details@example.com")
    response = await _save(client, **changes)
    assert response.status_code == 422
    assert message in response.text
    assert f'aria-describedby="field-{field}-error"' in response.text
    assert 'value="Unter den Linden 1"' in response.text or field == "line1"
    customer, _ = await customer_of(session, "bad-details@example.com")
    assert await session.get(BillingDetails, customer.id) is None


async def test_tax_ids_are_added_and_removed_at_stripe(
    client: AsyncTestClient[Litestar], session: AsyncSession, gateway: StripeGateway
) -> None:
    await login_new_user(client, "vat@example.com")
    assert (await _add_tax_id(client, "DE123456789")).status_code == 303
    assert (await _add_tax_id(client, "GB000000000", "gb_vat")).status_code == 303
    stripe_id = await _stripe_customer(client, session, "vat@example.com")
    remote = await gateway.list_tax_ids(stripe_id)
    assert sorted((t["type"], t["value"]) for t in remote) == [
        ("eu_vat", "DE123456789"),
        ("gb_vat", "GB000000000"),
    ]
    page = (await client.get("/billing/details")).text
    assert _shown_tax_ids(page) == ["DE123456789", "GB000000000"]
    assert "EU VAT number" in page and "Verified" in page

    await customer_of(session, "vat@example.com")
    rows = list(await session.scalars(select(CustomerTaxId).order_by(CustomerTaxId.id)))
    assert [r.value for r in rows] == ["DE123456789", "GB000000000"]
    removed = await post_form(client, f"/billing/details/tax-ids/{rows[0].id}/remove")
    assert removed.status_code == 303
    assert [t["value"] for t in await gateway.list_tax_ids(stripe_id)] == ["GB000000000"]
    page = (await client.get("/billing/details")).text
    assert _shown_tax_ids(page) == ["GB000000000"]


async def test_an_invalid_tax_id_shows_stripes_message_on_the_form(
    client: AsyncTestClient[Litestar], session: AsyncSession, gateway: StripeGateway
) -> None:
    await login_new_user(client, "badvat@example.com")
    response = await _add_tax_id(client, "DE12")
    assert response.status_code == 422
    assert "Invalid value for eu_vat." in response.text
    assert 'aria-describedby="field-tax_id_value-error"' in response.text
    assert 'value="DE12"' in response.text  # what was typed, kept
    assert list(await session.scalars(select(CustomerTaxId))) == []
    stripe_id = await _stripe_customer(client, session, "badvat@example.com")
    assert await gateway.list_tax_ids(stripe_id) == []


async def test_another_customers_tax_id_cannot_be_removed(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    await login_new_user(client, "owner@example.com")
    assert (await _add_tax_id(client, "DE123456789")).status_code == 303
    row = await session.scalar(select(CustomerTaxId))
    assert row is not None
    intruder = sibling_client(client)
    await login_new_user(intruder, "intruder@example.com")
    response = await post_form(intruder, f"/billing/details/tax-ids/{row.id}/remove")
    assert response.status_code == 404
    assert await session.scalar(select(CustomerTaxId)) is not None


def _details_events(emulator: Emulator, stripe_id: str, after: int) -> list[tuple[bytes, str]]:
    kinds = {"customer.updated", "customer.tax_id.created", "customer.tax_id.deleted"}

    def related(event: dict[str, Any]) -> bool:
        obj = event["data"]["object"]
        return event["type"] in kinds and stripe_id in (obj.get("id"), obj.get("customer"))

    return emulator.deliveries_for(related, after=after)


async def test_changes_made_at_stripe_arrive_by_webhook_in_any_order(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    gateway: StripeGateway,
    emulator: Emulator,
) -> None:
    await login_new_user(client, "webhooks@example.com")
    assert (await _save(client, invoice_email="")).status_code == 303
    stripe_id = await _stripe_customer(client, session, "webhooks@example.com")
    mark = emulator.mark()
    # Changed at Stripe (the Dashboard, Stripe's own portal): name and address, two tax IDs,
    # one of them removed again.
    await gateway.update_billing_details(
        stripe_id,
        name="Renamed Ltd",
        address={"line1": "1 Main St", "city": "London", "postal_code": "N1", "country": "GB"},
        email="webhooks@example.com",
        key="test-rename",
    )
    kept = await gateway.create_tax_id(stripe_id, tax_type="gb_vat", value="GB123456789", key="k1")
    gone = await gateway.create_tax_id(stripe_id, tax_type="eu_vat", value="DE123456789", key="k2")
    await gateway.delete_tax_id(stripe_id, gone["id"])
    await wait_for_events(
        emulator,
        stripe_id,
        {"customer.updated", "customer.tax_id.created", "customer.tax_id.deleted"},
        after=mark,
    )
    deliveries = _details_events(emulator, stripe_id, mark)
    assert len(deliveries) == 4
    shuffled = deliveries + deliveries[:2]
    random.Random(7).shuffle(shuffled)
    await forward(client, shuffled)

    customer, _ = await customer_of(session, "webhooks@example.com")
    row = await session.get(BillingDetails, customer.id)
    assert row is not None
    assert (row.name, row.line1, row.city, row.country) == (
        "Renamed Ltd",
        "1 Main St",
        "London",
        "GB",
    )
    assert row.invoice_email is None  # the account's own email
    rows = list(await session.scalars(select(CustomerTaxId)))
    assert [(r.stripe_tax_id, r.value) for r in rows] == [(kept["id"], "GB123456789")]
    page = (await client.get("/billing/details")).text
    assert "Renamed Ltd" in page and "United Kingdom" in page
    assert _shown_tax_ids(page) == ["GB123456789"]


async def _subscribe(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    email: str,
    pay: dict[str, str] | None = None,
    code: str | None = None,
) -> tuple[str, str]:
    """Subscribe to Pro through Checkout (paid now: a returning customer has no trial), with
    `pay`'s form and a promotion code applied first; the webhooks forwarded. Returns the
    Stripe customer id and the checkout URL."""
    _, row = await customer_of(session, email)
    row.metadata_ = {"last_stripe_subscription_id": "sub_old"}
    await session.commit()
    mark = emulator.mark()
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    assert response.status_code == 303, response.text
    url = response.headers["location"]
    if code:
        applied = httpx.post(f"{url}/promotion_code", data={"code": code})
        assert applied.status_code == 303, applied.text
    paid = httpx.post(url, data={**VISA, **(pay or {})}, timeout=10)
    assert paid.status_code == 303, paid.text
    stripe_id = await _stripe_customer(client, session, email)
    events = {"checkout.session.completed", "invoice.paid", "customer.subscription.created"}
    await forward(client, await wait_for_events(emulator, stripe_id, events, after=mark))
    return stripe_id, url


async def _paid_invoice(session: AsyncSession) -> Invoice:
    await session.rollback()
    session.expire_all()
    invoice = await session.scalar(
        select(Invoice).where(Invoice.status == "paid", Invoice.total > 0)
    )
    assert invoice is not None
    return invoice


async def test_an_invoice_shows_the_details_it_carried(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    await login_new_user(client, "carried@example.com")
    assert (await _save(client)).status_code == 303
    assert (await _add_tax_id(client, "DE123456789")).status_code == 303
    await _subscribe(client, session, emulator, "carried@example.com")
    invoice = await _paid_invoice(session)
    assert invoice.billed_to == {
        "name": "Acme GmbH",
        "address": {
            "line1": "Unter den Linden 1",
            "city": "Berlin",
            "postal_code": "10117",
            "country": "DE",
        },
        "tax_ids": [{"type": "eu_vat", "value": "DE123456789"}],
    }
    # Changed since: the invoice keeps what it was issued with.
    assert (await _save(client, name="Other Name")).status_code == 303
    page = (await client.get(f"/billing/invoices/{invoice.stripe_invoice_id}")).text
    billed = page[page.index('data-testid="invoice-billed-to"') :]
    billed = billed[: billed.index("</dd>")]
    assert "Acme GmbH" in billed and "Other Name" not in billed
    assert "10117 Berlin" in billed and "Germany" in billed
    assert "EU VAT number: DE123456789" in billed


async def _checkout_session(emulator: Emulator, url: str) -> dict[str, Any]:
    session_id = url.rstrip("/").rsplit("/", 1)[-1]
    response = httpx.get(
        f"{emulator.url}/v1/checkout/sessions/{session_id}",
        headers={"Authorization": "Bearer sk_test_details"},
    )
    response.raise_for_status()
    return dict(response.json())


async def test_checkout_sends_nothing_extra_when_the_settings_are_off(
    client: AsyncTestClient[Litestar], emulator: Emulator
) -> None:
    await login_new_user(client, "plain@example.com")
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    session = await _checkout_session(emulator, response.headers["location"])
    assert session["allow_promotion_codes"] is None
    assert session["billing_address_collection"] is None
    assert session["tax_id_collection"]["enabled"] is False
    assert session["automatic_tax"]["enabled"] is False
    page = httpx.get(response.headers["location"]).text
    assert 'name="code"' not in page and 'name="address_line1"' not in page


ALL_ON = {
    "checkout_collect_billing_address": "required",
    "checkout_collect_tax_id": True,
    "checkout_allow_promotion_codes": True,
    "stripe_automatic_tax": True,
}


@pytest.mark.parametrize("checkout_settings", [ALL_ON])
async def test_checkout_gets_the_parameters_when_the_settings_are_on(
    client: AsyncTestClient[Litestar], emulator: Emulator
) -> None:
    await login_new_user(client, "collect@example.com")
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    assert response.status_code == 303, response.text
    session = await _checkout_session(emulator, response.headers["location"])
    assert session["allow_promotion_codes"] is True
    assert session["billing_address_collection"] == "required"
    assert session["tax_id_collection"]["enabled"] is True
    assert session["automatic_tax"]["enabled"] is True
    page = httpx.get(response.headers["location"]).text
    for name in ('name="code"', 'name="address_line1"', 'name="tax_id_value"'):
        assert name in page


@pytest.mark.parametrize("checkout_settings", [ALL_ON])
async def test_checkout_collects_the_address_and_tax_id_into_the_details(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    await login_new_user(client, "collected@example.com")
    form = {
        **ADDRESS_FORM,
        "business_name": "Acme GmbH",
        "tax_id_type": "eu_vat",
        "tax_id_value": "DE123456789",
    }
    stripe_id, _ = await _subscribe(client, session, emulator, "collected@example.com", form)
    await forward(client, _details_events(emulator, stripe_id, 0))
    customer, _ = await customer_of(session, "collected@example.com")
    row = await session.get(BillingDetails, customer.id)
    assert row is not None and (row.name, row.city, row.country) == ("Acme GmbH", "Berlin", "DE")
    assert [r.value for r in await session.scalars(select(CustomerTaxId))] == ["DE123456789"]


@pytest.mark.parametrize("checkout_settings", [{"checkout_allow_promotion_codes": True}])
async def test_the_test_promotion_code_takes_20_percent_off(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    await login_new_user(client, "promo@example.com")
    await _subscribe(client, session, emulator, "promo@example.com", code="TEST20")
    invoice = await _paid_invoice(session)
    assert invoice.discount == invoice.subtotal // 5
    assert invoice.total == invoice.subtotal - invoice.discount
    assert invoice.amount_paid == invoice.total
    page = (await client.get(f"/billing/invoices/{invoice.stripe_invoice_id}")).text
    totals = page[page.index('data-testid="invoice-totals"') :]
    assert re.search(r"Discounts</th><td class=\"num\">-\$\d+\.\d\d", totals), totals[:600]


@pytest.mark.parametrize("checkout_settings", [{"stripe_automatic_tax": True}])
async def test_automatic_tax_adds_the_test_rate(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    await login_new_user(client, "taxed@example.com")
    await _subscribe(client, session, emulator, "taxed@example.com", ADDRESS_FORM)
    invoice = await _paid_invoice(session)
    assert invoice.tax == invoice.subtotal // 10
    assert invoice.total == invoice.subtotal + invoice.tax
    page = (await client.get(f"/billing/invoices/{invoice.stripe_invoice_id}")).text
    totals = page[page.index('data-testid="invoice-totals"') :]
    assert "Tax</th>" in totals


@pytest.mark.parametrize("checkout_settings", [{"stripe_automatic_tax": True}])
async def test_automatic_tax_on_a_plan_change_and_its_review(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    await login_new_user(client, "taxchange@example.com")
    stripe_id, _ = await _subscribe(
        client, session, emulator, "taxchange@example.com", ADDRESS_FORM
    )
    page, fields = await review_plan_change(client, "business")
    tax = re.search(r'data-testid="review-tax">\$([\d,.]+)<', page.text)
    due = re.search(r'data-testid="review-due">\$([\d,.]+)<', page.text)
    assert tax and due, page.text
    assert float(tax.group(1)) > 0
    assert "plus tax" in page.text
    mark = emulator.mark()
    assert (await post_form(client, "/billing/subscription/change", fields)).status_code == 303
    (subscription,) = [
        s for s in await gateway.list_subscriptions(stripe_id) if s.get("status") == "active"
    ]
    assert subscription.get("automatic_tax", {}).get("enabled") is True
    events = {"invoice.paid"}
    await forward(client, await wait_for_events(emulator, stripe_id, events, after=mark))
    await session.rollback()
    change = await session.scalar(
        select(Invoice).where(Invoice.billing_reason == "subscription_update")
    )
    assert change is not None
    assert change.tax == round(float(tax.group(1).replace(",", "")) * 100)
    assert change.amount_paid == round(float(due.group(1).replace(",", "")) * 100)


async def test_a_login_email_change_keeps_an_invoice_email(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    gateway: StripeGateway,
    catalog: Catalog,
) -> None:
    await login_new_user(client, "keeps@example.com")
    assert (await _save(client)).status_code == 303
    customer, _ = await customer_of(session, "keeps@example.com")
    assert customer.stripe_customer_id
    billing = BillingService(session, catalog, gateway, "http://testserver.local")
    await _rename(session, customer, "renamed@example.com")
    await billing.sync_customer_email(customer, "change-1")
    remote = await gateway.retrieve_customer(customer.stripe_customer_id)
    assert remote["email"] == "billing@acme.example"  # invoices still go there

    assert (await _save(client, invoice_email="")).status_code == 303
    customer, _ = await customer_of(session, "renamed@example.com")
    await _rename(session, customer, "again@example.com")
    await billing.sync_customer_email(customer, "change-2")
    remote = await gateway.retrieve_customer(customer.stripe_customer_id)
    assert remote["email"] == "again@example.com"  # no invoice email: the login's follows


async def _rename(session: AsyncSession, customer: Customer, email: str) -> None:
    """The customer's email changed and committed, as the email change flow leaves it."""
    await write_from_here(session)
    customer.email = email
    await session.commit()


# A new Stripe customer gets the saved details; the reconcile repairs them --------------------


def _delete_at_stripe(emulator: Emulator, stripe_id: str) -> None:
    api = stripe.StripeClient(
        "sk_test_details", base_addresses={"api": emulator.url}, max_network_retries=0
    )
    api.v1.customers.delete(stripe_id)


async def _saved_with_tax_ids(
    client: AsyncTestClient[Litestar], session: AsyncSession, email: str
) -> str:
    """A customer with the details and two tax IDs saved; returns its Stripe customer id."""
    await login_new_user(client, email)
    assert (await _save(client)).status_code == 303
    assert (await _add_tax_id(client, "DE123456789")).status_code == 303
    assert (await _add_tax_id(client, "GB000000000", "gb_vat")).status_code == 303
    return await _stripe_customer(client, session, email)


async def _assert_carries_the_saved_details(
    gateway: StripeGateway, stripe_id: str, tax_ids: list[tuple[str, str]]
) -> None:
    remote = await gateway.retrieve_customer(stripe_id)
    assert (remote["name"], remote["email"]) == ("Acme GmbH", "billing@acme.example")
    assert remote.get("address") == STRIPE_ADDRESS
    remote_tax_ids = await gateway.list_tax_ids(stripe_id)
    assert sorted((t["type"], t["value"]) for t in remote_tax_ids) == tax_ids


@pytest.mark.parametrize("webhook", ["delivered", "not yet delivered"])
async def test_a_stripe_customer_made_again_gets_the_saved_details_and_tax_ids(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    gateway: StripeGateway,
    emulator: Emulator,
    webhook: str,
) -> None:
    email = f"again-{webhook.replace(' ', '-')}@example.com"
    old = await _saved_with_tax_ids(client, session, email)
    customer, _ = await customer_of(session, email)
    rows_before = [r.id for r in await session.scalars(select(CustomerTaxId))]
    mark = emulator.mark()
    _delete_at_stripe(emulator, old)
    if webhook == "delivered":
        await forward(
            client, await wait_for_events(emulator, old, {"customer.deleted"}, after=mark)
        )
        customer, _ = await customer_of(session, email)
        assert customer.stripe_customer_id is None

    # The next action that needs a Stripe customer makes a new one.
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith(emulator.url)

    customer, _ = await customer_of(session, email)
    new = customer.stripe_customer_id
    assert new and new != old
    await _assert_carries_the_saved_details(
        gateway, new, [("eu_vat", "DE123456789"), ("gb_vat", "GB000000000")]
    )
    # The same rows, now mirroring the new customer's tax IDs (the page's links stay valid).
    rows = list(await session.scalars(select(CustomerTaxId).order_by(CustomerTaxId.id)))
    remote = {t["id"]: t["value"] for t in await gateway.list_tax_ids(new)}
    assert [r.id for r in rows] == rows_before
    assert {r.stripe_tax_id: r.value for r in rows} == remote
    page = (await client.get("/billing/details")).text
    assert _shown_tax_ids(page) == ["DE123456789", "GB000000000"]
    assert "Acme GmbH" in page and "10117 Berlin" in page


def _invoiced_customers(emulator: Emulator) -> set[str]:
    """The emulator's live customers whose invoices go to the saved invoice email."""
    api = stripe.StripeClient("sk_test_details", base_addresses={"api": emulator.url})
    listed = api.v1.customers.list(params={"email": "billing@acme.example", "limit": 100})
    return {c.id for c in listed.auto_paging_iter()}


class _FailsOnce(StripeGateway):
    """Stripe unreachable at the second tax ID, once."""

    calls = 0

    async def create_tax_id(self, customer_id: str, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 2:
            raise StripeGatewayError("Stripe could not be reached.", http_status=None)
        return await super().create_tax_id(customer_id, **kwargs)


async def test_a_retry_after_a_failure_adds_no_tax_id_twice(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    gateway: StripeGateway,
    emulator: Emulator,
    settings: Settings,
    catalog: Catalog,
) -> None:
    email = "retry-restore@example.com"
    old = await _saved_with_tax_ids(client, session, email)
    _delete_at_stripe(emulator, old)
    customer, _ = await customer_of(session, email)
    billing = BillingService(
        session, catalog, _FailsOnce.from_settings(settings), "http://testserver.local"
    )
    await billing.mirror.forget_stripe_customer(old)  # as the customer.deleted webhook does
    await session.commit()

    before = _invoiced_customers(emulator)
    with pytest.raises(StripeGatewayError):
        await billing.ensure_stripe_customer(customer)
    await session.rollback()
    customer, _ = await customer_of(session, email)
    assert customer.stripe_customer_id is None  # nothing committed

    new = await billing.ensure_stripe_customer(customer)
    await _assert_carries_the_saved_details(
        gateway, new, [("eu_vat", "DE123456789"), ("gb_vat", "GB000000000")]
    )
    # The first attempt's customer, replayed (not a second one).
    assert _invoiced_customers(emulator) - before == {new}


async def test_a_saved_tax_id_stripe_refuses_is_left_out_and_the_action_goes_on(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    gateway: StripeGateway,
    emulator: Emulator,
) -> None:
    email = "refused-restore@example.com"
    old = await _saved_with_tax_ids(client, session, email)
    # A value Stripe no longer accepts (saved when it did).
    await write_from_here(session)
    stale = await session.scalar(select(CustomerTaxId).where(CustomerTaxId.type == "gb_vat"))
    assert stale is not None
    stale.value = "GB12"
    await session.commit()
    _delete_at_stripe(emulator, old)

    with structlog.testing.capture_logs() as logs:
        response = await post_form(client, "/billing/credits/checkout", {"pack": "ai_100"})
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith(emulator.url)

    customer, _ = await customer_of(session, email)
    assert customer.stripe_customer_id and customer.stripe_customer_id != old
    await _assert_carries_the_saved_details(
        gateway, customer.stripe_customer_id, [("eu_vat", "DE123456789")]
    )
    rows = list(await session.scalars(select(CustomerTaxId)))
    assert [r.value for r in rows] == ["DE123456789"]
    refused = [e for e in logs if "refused" in e["event"]]
    assert refused and refused[0]["tax_id_type"] == "gb_vat"
    page = (await client.get("/billing/details")).text
    assert _shown_tax_ids(page) == ["DE123456789"]


async def test_the_reconcile_brings_the_details_back_in_line_with_stripe(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    gateway: StripeGateway,
    catalog: Catalog,
) -> None:
    email = "reconcile-details@example.com"
    stripe_id = await _saved_with_tax_ids(client, session, email)
    # Changed at Stripe, its webhooks never delivered; and our row changed by hand.
    await gateway.update_billing_details(
        stripe_id,
        name="Renamed Ltd",
        address={"line1": "1 Main St", "city": "London", "postal_code": "N1", "country": "GB"},
        email=email,
        key="reconcile-rename",
    )
    kept = await gateway.create_tax_id(stripe_id, tax_type="no_vat", value="123456789MVA", key="r1")
    for tax_id in await gateway.list_tax_ids(stripe_id):
        if tax_id["type"] == "eu_vat":
            await gateway.delete_tax_id(stripe_id, tax_id["id"])
    customer, _ = await customer_of(session, email)
    await write_from_here(session)
    row = await session.get(BillingDetails, customer.id)
    assert row is not None
    row.postal_code = "99999"
    await session.commit()

    billing = BillingService(session, catalog, gateway, "http://testserver.local")
    dry = await reconcile_all(session, billing, billing.mirror, repair=False)
    assert any("billing details differ" in line for line in dry.drift), dry
    customer, _ = await customer_of(session, email)
    row = await session.get(BillingDetails, customer.id)
    assert row is not None and row.name == "Acme GmbH"  # a dry run changes nothing

    result = await reconcile_all(session, billing, billing.mirror, repair=True)
    assert result.errors == []
    assert any(f"{customer.external_id}: billing details differ" in d for d in result.drift)
    customer, _ = await customer_of(session, email)
    row = await session.get(BillingDetails, customer.id)
    assert row is not None
    assert (row.name, row.line1, row.city, row.postal_code, row.country, row.invoice_email) == (
        "Renamed Ltd",
        "1 Main St",
        "London",
        "N1",
        "GB",
        None,
    )
    rows = list(await session.scalars(select(CustomerTaxId)))
    remote = await gateway.list_tax_ids(stripe_id)
    assert sorted((r.stripe_tax_id, r.value) for r in rows) == sorted(
        (t["id"], t["value"]) for t in remote
    )
    assert kept["id"] in {r.stripe_tax_id for r in rows}
    assert sorted(r.value for r in rows) == ["123456789MVA", "GB000000000"]

    again = await reconcile_all(session, billing, billing.mirror, repair=True)
    assert not [d for d in again.drift if customer.external_id in d], again.drift
