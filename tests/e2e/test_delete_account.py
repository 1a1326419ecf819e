"""Deleting an account in real Chromium (issue 19, item 4): a paying user deletes their
account, choosing to end the subscription now; the emulator has it canceled; the login is
refused afterwards."""

from __future__ import annotations

import re
from typing import Any

import pytest
import stripe
from playwright.sync_api import Page, expect

from app.accounts.service import LOGIN_FAILED
from tests.e2e.conftest import LiveServer, unique_email
from tests.e2e.emulator import emulator_env, wait_for_emulator
from tests.support import free_port

EMULATOR_PORT = free_port()
EMULATOR = f"http://127.0.0.1:{EMULATOR_PORT}"
PASSWORD = "correct horse battery"
WEBHOOK_TIMEOUT = 15_000


@pytest.fixture(scope="module")
def live_server_env() -> dict[str, str]:
    # Paid Checkout without confirming the email first (that flow has its own tests).
    return {**emulator_env(EMULATOR_PORT), "REQUIRE_EMAIL_VERIFICATION": "0"}


@pytest.fixture(scope="module")
def live_server_args() -> tuple[str, ...]:
    return ()  # `serve` starts the emulator


@pytest.fixture(scope="module", autouse=True)
def emulator_ready(live_server: Any) -> None:
    wait_for_emulator(EMULATOR)


def subscriptions_of(email: str) -> list[dict[str, Any]]:
    client = stripe.StripeClient("sk_test_emulator", base_addresses={"api": EMULATOR})
    customers = client.v1.customers.list({"limit": 100}).data
    ids = [c.id for c in customers if getattr(c, "email", None) == email]
    assert len(ids) == 1, ids
    return subscriptions_of_customer(ids[0])


def test_delete_account_cancels_the_subscription_and_refuses_the_login(
    page: Page, live_server: LiveServer
):
    email = unique_email("delete")
    page.goto("/signup")
    page.get_by_label("Name").fill("Grace")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("current-plan")).to_contain_text("Free")

    page.goto("/billing/upgrade")
    page.get_by_test_id("checkout-pro-monthly").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(EMULATOR)}/checkout/cs_"))
    page.locator("input[name=card_number]").fill("4242 4242 4242 4242")
    page.locator("input[name=exp_date]").fill("12 / 34")
    page.locator("input[name=cvc]").fill("123")
    page.get_by_test_id("checkout-pay").click()
    expect(page.get_by_test_id("checkout-status")).to_have_attribute(
        "data-state", "done", timeout=WEBHOOK_TIMEOUT
    )
    [live] = subscriptions_of(email)
    assert live["status"] in ("trialing", "active")

    page.goto("/account")
    page.get_by_test_id("delete-account-start").click()
    expect(page.get_by_test_id("delete-subscription")).to_contain_text("Pro")
    expect(page.get_by_test_id("delete-kept")).to_contain_text("invoices")
    page.get_by_test_id("delete-mode-now").check()
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_test_id("delete-submit").click()

    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator(".flash")).to_contain_text("is deleted")
    expect(page.get_by_test_id("logout")).to_have_count(0)
    [ended] = subscriptions_of_customer(live["customer"])
    assert ended["status"] == "canceled"

    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_role("alert")).to_have_text(LOGIN_FAILED)
    expect(page.get_by_test_id("logout")).to_have_count(0)


def subscriptions_of_customer(customer_id: str) -> list[dict[str, Any]]:
    """By the Stripe customer's id: after the deletion it has no email any more."""
    client = stripe.StripeClient("sk_test_emulator", base_addresses={"api": EMULATOR})
    subs = client.v1.subscriptions.list({"customer": customer_id, "status": "all"})
    return [s.to_dict() for s in subs]
