"""Guests in a real browser (issue 20, item 1): from the login page to /try, three fake AI
requests as a guest, then sign up: the dashboard shows the three requests as used."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer, unique_email

PASSWORD = "correct horse battery"


def test_try_three_requests_then_sign_up_carries_them_over(page: Page, live_server: LiveServer):
    page.goto("/login")
    page.get_by_test_id("try-link").click()
    expect(page).to_have_url(re.compile(r"/try$"))
    counter = page.get_by_test_id("guest-counter")
    expect(counter).to_have_text("0 of 5 free requests used")

    for used in (1, 2, 3):
        page.get_by_test_id("guest-try").click()
        expect(counter).to_have_text(f"{used} of 5 free requests used")
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "60")

    page.get_by_test_id("guest-signup").click()
    expect(page).to_have_url(re.compile(r"/signup\?guest="))
    expect(page.get_by_test_id("guest-carry-over")).to_be_visible()
    page.get_by_label("Name").fill("Grace")
    page.get_by_label("Email").fill(unique_email("guest"))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()

    expect(page).to_have_url(f"{live_server.url}/billing")
    expect(page.get_by_text("Your 3 AI requests as a guest carried over.")).to_be_visible()
    expect(page.get_by_test_id("meter-ai_requests").locator(".meter-count strong")).to_have_text(
        "3"
    )


def test_a_guest_at_the_limit_is_asked_to_sign_up(page: Page, live_server: LiveServer):
    page.goto("/try")
    for used in range(1, 6):
        page.get_by_test_id("guest-try").click()
        expect(page.get_by_test_id("guest-counter")).to_have_text(f"{used} of 5 free requests used")
    expect(page.get_by_test_id("guest-used-up")).to_contain_text("Sign up to keep going")
    expect(page.get_by_test_id("guest-try")).to_have_count(0)
    expect(page.get_by_test_id("guest-signup")).to_have_attribute("href", re.compile("guest="))
