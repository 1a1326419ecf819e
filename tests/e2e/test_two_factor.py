"""Two-factor login in real Chromium (issue 19, item 5): turn it on from the account page with
the secret read off the page (the code computed with pyotp, as a phone app would), log out,
and the login asks for the code before it lets anyone in."""

from __future__ import annotations

import re
import time

import pyotp
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer, unique_email
from tests.e2e.site_pages import log_out

PASSWORD = "correct horse battery"


def sign_up(page: Page) -> str:
    email = unique_email("2fa")
    page.goto("/signup")
    page.get_by_label("Name").fill("Ada")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("current-plan")).to_contain_text("Free")
    return email


def log_in(page: Page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()


def test_enrol_then_the_login_asks_for_the_code(page: Page, live_server: LiveServer):
    email = sign_up(page)
    page.goto("/account")
    page.get_by_test_id("two-factor-manage").click()
    page.get_by_test_id("two-factor-start").click()

    qr = page.get_by_test_id("two-factor-qr").locator("svg")
    expect(qr).to_be_visible()
    secret = page.get_by_test_id("two-factor-secret").get_attribute("data-secret")
    assert secret and re.fullmatch(r"[A-Z2-7]{32}", secret)
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from the app").fill(totp.now())
    page.get_by_test_id("two-factor-confirm").click()
    codes = page.get_by_test_id("recovery-codes").locator("code")
    expect(codes).to_have_count(10)
    page.get_by_test_id("two-factor-done").click()
    expect(page.get_by_test_id("two-factor-status")).to_contain_text("On")

    log_out(page)
    expect(page).to_have_url(re.compile(r"/login$"))
    log_in(page, email)
    expect(page).to_have_url(re.compile(r"/login/two-factor$"))
    expect(page.get_by_test_id("logout")).to_have_count(0)  # not logged in yet
    page.get_by_label("Code").fill("000000")
    page.get_by_test_id("two-factor-submit").click()
    expect(page.get_by_role("alert")).to_contain_text("not right")

    # The code of the next 30 seconds: the one used to confirm cannot be used again.
    page.get_by_label("Code").fill(totp.at(time.time() + 30))
    page.get_by_test_id("two-factor-submit").click()
    expect(page).to_have_url(f"{live_server.url}/billing")
    expect(page.get_by_test_id("nav-user")).to_have_text(email)
