"""An admin refunds part of a credit pack's invoice in real Chromium (issue 20, item 8): the
form, the review showing the amount, the confirm; the customer then sees the refund on the
invoice and a quarter of the pack's credits gone. No JavaScript is needed on the way."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from app.demo import DEMO_ADMIN
from tests.e2e.conftest import LiveServer
from tests.e2e.test_admin import log_in

# The Checkout tests' server and emulator (one server per distinct environment).
from tests.e2e.test_checkout import (  # noqa: F401
    emulator_ready,
    live_server_args,
    live_server_env,
    pay_and_wait,
    sign_up,
)


def test_admin_refunds_part_of_a_pack_and_the_customer_sees_it(
    page: Page, browser: Browser, live_server: LiveServer
) -> None:
    email = sign_up(page)
    page.goto("/billing/credits")
    page.get_by_test_id("buy-ai_100").click()
    pay_and_wait(page)
    expect(page.get_by_test_id("credits-balance")).to_have_text("100")

    admin_context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        admin = admin_context.new_page()
        log_in(admin, DEMO_ADMIN[1], DEMO_ADMIN[2])
        admin.goto("/admin/billing/invoices")
        row = admin.get_by_test_id("invoice-table").locator("tbody tr", has_text=email)
        row.get_by_role("link", name="View / refund").click()
        expect(admin.get_by_test_id("payment-refundable")).to_have_text("$10.00")

        admin.get_by_test_id("refund-amount").fill("2.50")
        admin.get_by_test_id("refund-reason").select_option("requested_by_customer")
        admin.get_by_test_id("refund-submit").click()
        summary = admin.get_by_test_id("confirm-summary")
        expect(summary).to_contain_text("Refund $2.50 of Invoice")
        expect(summary).to_contain_text("Visa ending in 4242")
        admin.get_by_test_id("confirm-reason").fill("Goodwill: the model was down")
        admin.get_by_test_id("confirm-submit").click()
        expect(admin.locator(".flash-success")).to_contain_text("Refunded $2.50 of Invoice")
        expect(admin.get_by_test_id("payment-refundable")).to_have_text("$7.50")
    finally:
        admin_context.close()

    page.goto("/billing/invoices")
    expect(page.get_by_test_id("invoice-table")).to_contain_text("Partially refunded")
    page.goto("/billing/credits")
    expect(page.get_by_test_id("credits-ai_requests")).to_contain_text("75 left")
