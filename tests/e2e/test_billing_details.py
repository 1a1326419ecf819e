"""Billing details in real Chromium (issue 19, item 6): the details page saves the billing
name, address and a tax ID (a malformed one gets Stripe's message on its field), reached from
the settings page; with promotion codes allowed (CHECKOUT_ALLOW_PROMOTION_CODES), a Checkout
with the emulator's test code TEST20 ends with an invoice showing the 20 % discount and the
details it was made out to."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import unique_email
from tests.e2e.emulator import emulator_env, serve_with_emulator
from tests.support import free_port

EMULATOR_PORT = free_port()
EMULATOR = f"http://127.0.0.1:{EMULATOR_PORT}"
PASSWORD = "correct horse battery"
WEBHOOK_TIMEOUT = 15_000

_, live_server_args, emulator_ready = serve_with_emulator(EMULATOR_PORT)


@pytest.fixture(scope="module")
def live_server_env() -> dict[str, str]:
    return {
        **emulator_env(EMULATOR_PORT),
        "CHECKOUT_ALLOW_PROMOTION_CODES": "true",
        "REQUIRE_EMAIL_VERIFICATION": "false",
    }


def sign_up(page: Page) -> str:
    email = unique_email("details")
    page.goto("/signup")
    page.get_by_label("Name").fill("Grace")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("current-plan")).to_contain_text("Free")
    return email


def fill_details(page: Page) -> None:
    page.goto("/billing/settings")
    page.get_by_test_id("billing-details-link").click()
    expect(page).to_have_url(re.compile(r"/billing/details$"))
    form = page.get_by_test_id("billing-details-form")
    form.get_by_label("Billing name").fill("Acme GmbH")
    form.get_by_label("Address line 1").fill("Unter den Linden 1")
    form.get_by_label("City").fill("Berlin")
    form.get_by_label("Postal code").fill("10117")
    form.get_by_label("Country").select_option("DE")
    form.get_by_label("Invoice email").fill("billing@acme.example")
    page.get_by_test_id("billing-details-save").click()
    summary = page.get_by_test_id("billing-details-summary")
    expect(summary).to_contain_text("Acme GmbH")
    expect(summary).to_contain_text("10117 Berlin")
    expect(summary).to_contain_text("Germany")


def add_tax_id(page: Page, value: str) -> None:
    form = page.get_by_test_id("tax-id-form")
    form.get_by_label("Type").select_option("eu_vat")
    form.get_by_role("textbox", name="Tax ID").fill(value)
    page.get_by_test_id("tax-id-add").click()


def test_fill_billing_details_with_a_tax_id(page: Page) -> None:
    sign_up(page)
    fill_details(page)

    add_tax_id(page, "DE12")
    error = page.locator("#field-tax_id_value-error")
    expect(error).to_have_text("Invalid value for eu_vat.")
    expect(page.get_by_role("textbox", name="Tax ID")).to_have_value("DE12")
    expect(page.get_by_test_id("tax-id")).to_have_count(0)

    add_tax_id(page, "DE123456789")
    expect(page.get_by_test_id("tax-id-value")).to_have_text(["DE123456789"])
    page.reload()
    expect(page.get_by_test_id("billing-name")).to_have_text("Acme GmbH")
    expect(page.get_by_test_id("tax-id-value")).to_have_text(["DE123456789"])

    page.get_by_test_id("tax-id-remove").click()
    expect(page.get_by_test_id("tax-ids-empty")).to_be_visible()


def test_a_checkout_with_test20_ends_with_an_invoice_showing_the_discount(page: Page) -> None:
    sign_up(page)
    fill_details(page)
    add_tax_id(page, "DE123456789")
    expect(page.get_by_test_id("tax-id-value")).to_have_text(["DE123456789"])

    page.goto("/billing/upgrade")
    page.get_by_test_id("checkout-business-monthly").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(EMULATOR)}/checkout/cs_"))
    expect(page.get_by_test_id("checkout-amount")).to_have_text("149.00 USD")
    page.get_by_test_id("promotion-code").fill("TEST20")
    page.get_by_test_id("promotion-code-apply").click()
    expect(page.get_by_test_id("promotion-code-applied")).to_have_text("TEST20")
    expect(page.get_by_test_id("checkout-discount")).to_have_text("−29.80 USD")
    expect(page.get_by_test_id("checkout-amount")).to_have_text("119.20 USD")
    page.locator("input[name=card_number]").fill("4242 4242 4242 4242")
    page.locator("input[name=exp_date]").fill("12 / 34")
    page.locator("input[name=cvc]").fill("123")
    page.get_by_test_id("checkout-pay").click()
    expect(page.get_by_test_id("checkout-status")).to_have_attribute(
        "data-state", "done", timeout=WEBHOOK_TIMEOUT
    )

    page.goto("/billing/invoices")
    row = page.get_by_test_id("invoice-table").locator("tbody tr").first
    expect(row.get_by_test_id("invoice-amount")).to_have_text("$119.20")
    row.get_by_test_id("invoice-description").click()
    totals = page.get_by_test_id("invoice-totals")
    expect(totals).to_contain_text("Subtotal")
    expect(totals).to_contain_text("$149.00")
    expect(totals).to_contain_text("Discounts")
    expect(totals).to_contain_text("-$29.80")
    expect(totals).to_contain_text("$119.20")
    billed = page.get_by_test_id("invoice-billed-to")
    expect(billed).to_contain_text("Acme GmbH")
    expect(billed).to_contain_text("EU VAT number: DE123456789")
