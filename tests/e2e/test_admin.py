"""The admin page in a real browser: an admin finds a customer, grants credits (confirmed, with
a reason), and the customer's own dashboard shows them."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer, unique_email

PASSWORD = "correct horse battery"


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_test_id("login-submit").click()


def test_admin_finds_a_customer_grants_credits_and_the_customer_sees_them(
    page: Page, browser: Browser, live_server: LiveServer
) -> None:
    customer_email = unique_email("credits")
    page.goto("/signup")
    page.get_by_label("Name").fill("Credit Customer")
    page.get_by_label("Email").fill(customer_email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("current-plan")).to_contain_text("Free")
    expect(page.get_by_test_id("meter-ai_requests-credits")).to_have_count(0)

    admin_email = unique_email("admin")
    live_server.cli("create-admin", admin_email, "--password", PASSWORD)
    admin_context = browser.new_context(base_url=live_server.url)
    try:
        admin = admin_context.new_page()
        log_in(admin, admin_email, PASSWORD)
        admin.get_by_role("link", name="Admin").click()
        expect(admin.get_by_test_id("mrr")).to_be_visible()

        customers = admin.get_by_role("navigation", name="Admin").get_by_role(
            "link", name="Customers"
        )
        expect(customers).to_have_attribute("href", "/admin/billing/customers")
        admin.goto("/admin/billing/customers")  # a full load: htmx is set up before we type
        admin.get_by_test_id("customer-search").fill(customer_email.split("@")[0].upper())
        rows = admin.get_by_test_id("customer-table").locator("tbody tr")
        expect(rows).to_have_count(1)  # the search narrows as one types (htmx)
        rows.get_by_role("link", name=customer_email).click()
        expect(admin.get_by_test_id("customer-title")).to_have_text(customer_email)

        admin.get_by_label("Meter").select_option("ai_requests")
        admin.get_by_test_id("grant-amount").fill("25")
        admin.get_by_test_id("grant-submit").click()
        expect(admin.get_by_test_id("confirm-summary")).to_contain_text(
            f"Grant 25 AI requests credits to {customer_email}."
        )
        admin.get_by_test_id("confirm-reason").fill("Sorry for the outage")
        admin.get_by_test_id("confirm-submit").click()
        expect(admin).to_have_url(re.compile(r"/admin/billing/customers/user_\d+$"))
        expect(admin.get_by_role("status")).to_contain_text("Granted 25 AI requests credits")
        expect(admin.get_by_test_id("meter-ai_requests-credits")).to_contain_text("25 credits")

        admin.get_by_role("navigation", name="Admin").get_by_role("link", name="Audit log").click()
        expect(admin.get_by_test_id("audit-table")).to_contain_text("Sorry for the outage")
    finally:
        admin_context.close()

    page.goto("/billing")
    expect(page.get_by_test_id("meter-ai_requests-credits")).to_contain_text("25 credits left")
