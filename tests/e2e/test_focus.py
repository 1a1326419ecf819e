"""Focus and keyboard (issue 21, item 9): the login page focuses the email field, the
Monthly/Yearly switch keeps focus on itself across its htmx swap, and a confirm page puts
focus on its heading with a way back to where the user came from."""

from __future__ import annotations

import re
import secrets

from playwright.sync_api import Browser, Page, expect

from app.demo import DEMO_ADMIN, DEMO_USERS
from tests.e2e.conftest import LiveServer
from tests.e2e.site_pages import log_in


def test_login_focuses_the_email_field(page: Page) -> None:
    page.goto("/login")
    expect(page.get_by_label("Email")).to_be_focused()


def test_interval_switch_keeps_focus_on_the_switch(page: Page) -> None:
    _role, email, password, _name = DEMO_USERS[1]
    log_in(page, email, password)
    page.goto("/billing/upgrade")
    yearly = page.get_by_test_id("interval-year")
    yearly.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"interval=year"))
    expect(yearly).to_have_attribute("aria-current", "page")  # the swapped-in switch
    expect(yearly).to_be_focused()
    monthly = page.get_by_test_id("interval-month")
    page.keyboard.press("Shift+Tab")  # from Yearly back to Monthly, on the new content
    expect(monthly).to_be_focused()
    page.keyboard.press("Enter")
    expect(monthly).to_have_attribute("aria-current", "page")
    expect(monthly).to_be_focused()


def test_confirm_page_focuses_its_heading_and_back_returns(
    browser: Browser, live_server: LiveServer
) -> None:
    live_server.cli("create-api-key", f"e2e-focus-{secrets.token_hex(3)}")
    context = browser.new_context(base_url=live_server.url)
    try:
        page = context.new_page()
        _role, email, password = DEMO_ADMIN
        log_in(page, email, password)
        page.goto("/admin/billing/api-keys")
        page.locator("[data-testid^=revoke-]").first.click()
        heading = page.get_by_role("heading", level=1)
        expect(heading).to_contain_text("Confirm")
        expect(heading).to_be_focused()
        page.get_by_role("link", name="Back").click()
        expect(page).to_have_url(re.compile(r"/admin/billing/api-keys$"))
    finally:
        context.close()
