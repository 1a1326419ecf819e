"""Accounts in real Chromium (issue 19): a forgotten password through the emailed link, and
a new user who must confirm their email before a paid Checkout (REQUIRE_EMAIL_VERIFICATION
on; `serve` starts the Stripe emulator). Emails are read from the outbox in the database."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.notifications.models import EmailOutboxMessage
from tests.e2e.conftest import LiveServer, run_async, unique_email
from tests.e2e.emulator import emulator_env, wait_for_emulator
from tests.e2e.site_pages import log_out
from tests.factories import database_session
from tests.support import free_port

EMULATOR_PORT = free_port()
EMULATOR = f"http://127.0.0.1:{EMULATOR_PORT}"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
_LINK = re.compile(r"https?://\S+/(?:reset|verify)/[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def live_server_env() -> dict[str, str]:
    return {**emulator_env(EMULATOR_PORT), "REQUIRE_EMAIL_VERIFICATION": "1"}


@pytest.fixture(scope="module")
def live_server_args() -> tuple[str, ...]:
    return ()  # let `serve` start the emulator


@pytest.fixture(scope="module", autouse=True)
def emulator_ready(live_server: LiveServer) -> None:
    wait_for_emulator(EMULATOR)


def emailed_link(live_server: LiveServer, to: str, kind: str) -> str:
    """The link in the newest `kind` email to `to`, as the outbox holds it."""

    async def read() -> str:
        async with database_session(live_server.database_url) as session:
            message = await session.scalar(
                select(EmailOutboxMessage)
                .where(EmailOutboxMessage.to_address == to, EmailOutboxMessage.kind == kind)
                .order_by(EmailOutboxMessage.id.desc())
            )
            assert message is not None, f"no {kind} email to {to}"
            return message.text_body

    match = _LINK.search(run_async(read))
    assert match, f"no link in the {kind} email"
    return match.group(0)


def sign_up(page: Page, email: str) -> None:
    page.goto("/signup")
    page.get_by_label("Name").fill("Grace")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("current-plan")).to_contain_text("Free")


def test_forgotten_password_email_reset_login(page: Page, live_server: LiveServer) -> None:
    email = unique_email("reset")
    sign_up(page, email)
    log_out(page)

    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_test_id("forgot-link").click()
    # The login page has an Email field too: fill the one on /forgot, once it is there.
    expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_test_id("forgot-submit").click()
    expect(page.get_by_test_id("reset-sent")).to_contain_text("If an account uses this email")

    link = emailed_link(live_server, email, "password_reset")
    assert link.startswith(live_server.url + "/reset/")
    page.goto(link)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_test_id("reset-submit").click()

    expect(page).to_have_url(re.compile(r"/login\?email="))
    expect(page.locator(".flash-success")).to_contain_text("Your password is changed")
    expect(page.get_by_label("Email")).to_have_value(email)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("nav-user")).to_have_text(email)

    page.goto(link)  # used once: refused
    expect(page.get_by_test_id("link-refused")).to_contain_text("already used")


def test_signup_verify_then_checkout(page: Page, live_server: LiveServer) -> None:
    email = unique_email("verify")
    sign_up(page, email)
    expect(page.get_by_test_id("verify-banner")).to_contain_text("Confirm your email")

    page.goto("/billing/upgrade")
    page.get_by_test_id("checkout-pro-monthly").click()
    expect(page.get_by_test_id("verify-required")).to_contain_text("Confirm your email first")
    page.get_by_test_id("resend-verification").click()
    expect(page.locator(".flash-success")).to_contain_text(f"We sent a new link to {email}")

    page.goto(emailed_link(live_server, email, "verify_email"))
    page.get_by_test_id("confirm-link").click()
    expect(page.locator(".flash-success")).to_contain_text("your email address is confirmed")
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.get_by_test_id("verify-banner")).to_have_count(0)

    page.goto("/billing/upgrade")
    page.get_by_test_id("checkout-pro-monthly").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(EMULATOR)}/checkout/cs_"))
    page.locator("input[name=card_number]").fill("4242 4242 4242 4242")
    page.locator("input[name=exp_date]").fill("12 / 34")
    page.locator("input[name=cvc]").fill("123")
    page.get_by_test_id("checkout-pay").click()
    expect(page.get_by_test_id("checkout-status")).to_have_attribute(
        "data-state", "done", timeout=15_000
    )
    expect(page.get_by_test_id("checkout-result")).to_have_text("You are on Pro")
