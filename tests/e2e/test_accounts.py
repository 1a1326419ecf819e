"""Accounts in a real browser: sign up, log out, log in again, a wrong password."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from app.accounts.service import LOGIN_FAILED
from tests.e2e.conftest import LiveServer, unique_email
from tests.e2e.site_pages import log_out

PASSWORD = "correct horse battery"


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_test_id("login-submit").click()


def test_sign_up_log_out_and_log_in_again(page: Page, live_server: LiveServer):
    email = unique_email("signup")
    page.goto("/signup")
    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()

    expect(page).to_have_url(f"{live_server.url}/billing")
    expect(page.get_by_test_id("current-plan")).to_contain_text("Free")
    expect(page.get_by_test_id("nav-user")).to_have_text(email)

    log_out(page)
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_test_id("logout")).to_have_count(0)
    page.goto("/billing")  # logged out for real: the page sends us to log in
    expect(page).to_have_url(re.compile(r"/login\?next=/billing$"))

    log_in(page, email, PASSWORD)
    expect(page).to_have_url(f"{live_server.url}/billing")
    expect(page.get_by_test_id("current-plan")).to_contain_text("Free")
    expect(page.get_by_test_id("nav-user")).to_have_text(email)


def test_wrong_password_is_refused(page: Page, live_server: LiveServer):
    log_in(page, "demo@example.com", "not the demo password")
    expect(page.get_by_role("alert")).to_have_text(LOGIN_FAILED)
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_label("Email")).to_have_value("demo@example.com")
    expect(page.get_by_test_id("logout")).to_have_count(0)
