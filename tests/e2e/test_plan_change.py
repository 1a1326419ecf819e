"""A paying customer's plan change in real Chromium: the review page shows Stripe's preview
(today's charge, its lines, the card, the renewal, the quotas) and nothing changes until its
confirm; a downgrade is scheduled for the period end and "Keep" calls it off."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.emulator import emulator_env, wait_for_emulator
from tests.e2e.test_checkout import sign_up
from tests.support import free_port, wait_until

EMULATOR_PORT = free_port()
EMULATOR = f"http://127.0.0.1:{EMULATOR_PORT}"
WEBHOOK_TIMEOUT = 15_000


@pytest.fixture(scope="module")
def live_server_env() -> dict[str, str]:
    return emulator_env(EMULATOR_PORT)


@pytest.fixture(scope="module")
def live_server_args() -> tuple[str, ...]:
    return ()  # let `serve` start the emulator


@pytest.fixture(scope="module", autouse=True)
def emulator_ready(live_server: LiveServer) -> None:
    wait_for_emulator(EMULATOR)


def subscribe(page: Page, plan: str) -> None:
    sign_up(page)
    page.goto("/billing/upgrade")
    page.get_by_test_id(f"checkout-{plan}-monthly").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(EMULATOR)}/checkout/cs_"))
    page.locator("input[name=card_number]").fill("4242 4242 4242 4242")
    page.locator("input[name=exp_date]").fill("12 / 34")
    page.locator("input[name=cvc]").fill("123")
    page.get_by_test_id("checkout-pay").click()
    expect(page.get_by_test_id("checkout-status")).to_have_attribute(
        "data-state", "done", timeout=WEBHOOK_TIMEOUT
    )
    page.goto("/billing/payment-methods")  # the card's webhook has arrived
    expect(page.locator(".pm").filter(has_text="4242")).to_be_visible(timeout=WEBHOOK_TIMEOUT)


def test_the_review_page_before_an_upgrade_and_nothing_charged_without_confirm(
    page: Page, live_server: LiveServer
):
    subscribe(page, "pro")  # Pro's trial
    page.goto("/billing/upgrade")
    page.get_by_test_id("checkout-business-monthly").click()

    expect(page).to_have_url(
        f"{live_server.url}/billing/subscription/review?plan=business&interval=month"
    )
    review = page.get_by_test_id("review-change")
    expect(review.get_by_role("heading")).to_have_text("Change from Pro to Business?")
    # Business has no trial: leaving Pro's trial charges its first month today.
    expect(page.get_by_test_id("review-amount")).to_have_text("$149")
    expect(page.get_by_test_id("review-today")).to_contain_text("your trial ends now")
    expect(page.get_by_test_id("review-card")).to_contain_text("Visa card ending in 4242")
    expect(page.get_by_test_id("review-renewal")).to_contain_text("at $149 a month")
    expect(page.get_by_test_id("review-line")).to_have_count(2)  # Business, its API calls
    expect(page.get_by_test_id("review-due")).to_have_text("$149")
    quotas = page.get_by_test_id("review-quota")
    expect(quotas.filter(has_text="AI requests")).to_contain_text("Unlimited")
    expect(page.get_by_test_id("confirm-change")).to_have_text("Confirm and pay $149")

    # Leaving the review changes nothing.
    page.get_by_test_id("review-back").click()
    page.goto("/billing")
    expect(page.get_by_test_id("current-plan")).to_contain_text("Pro")
    expect(page.get_by_test_id("plan-status")).to_have_text("Trial")

    page.goto("/billing/subscription/review?plan=business&interval=month")
    page.get_by_test_id("confirm-change").click()
    expect(page).to_have_url(f"{live_server.url}/billing")
    expect(page.locator(".flash")).to_contain_text("You are now on Business")
    expect(page.get_by_test_id("current-plan")).to_contain_text("Business")
    page.goto("/billing/invoices")

    def charge_listed() -> bool:  # the invoice's webhook may still be on its way
        page.reload()
        return "$149.00" in page.get_by_test_id("invoice-table").inner_text()

    wait_until(charge_listed, WEBHOOK_TIMEOUT / 1000, "the $149 invoice on the invoices page")


def test_a_downgrade_is_scheduled_for_the_period_end_and_can_be_kept(
    page: Page, live_server: LiveServer
):
    subscribe(page, "business")
    page.goto("/billing")
    renewal = page.get_by_test_id("renewal").inner_text()
    ends = re.search(r"Renews on (.+)\.", renewal)
    assert ends, renewal
    page.goto("/billing/upgrade")
    page.get_by_test_id("checkout-pro-monthly").click()

    expect(page.get_by_test_id("review-today")).to_contain_text("Nothing is charged today")
    expect(page.get_by_test_id("review-renewal-amount")).to_have_text("$29")
    page.get_by_test_id("confirm-change").click()

    expect(page).to_have_url(f"{live_server.url}/billing")
    scheduled = page.get_by_test_id("scheduled-change")
    expect(scheduled).to_have_text(
        f"Changes to Pro on {ends.group(1)}. You keep Business until then."
    )
    expect(page.get_by_test_id("current-plan")).to_contain_text("Business")
    page.get_by_test_id("keep-plan").click()
    expect(page.locator(".flash")).to_contain_text("You keep Business; it renews as usual.")
    expect(page.get_by_test_id("scheduled-change")).to_have_count(0)
    expect(page.get_by_test_id("current-plan")).to_contain_text("Business")
