"""The Checkout success page with JavaScript off: nothing polls, so while the payment is pending
the page refreshes itself (a <noscript> meta refresh) and offers "Check again"; once done it
stops. The webhooks go to a receiver in this test and are forwarded to the portal when the test
says so, so the page is seen pending for certain before it flips."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.conftest import LiveServer, unique_email
from tests.integration.stripe_emulator.conftest import (
    WEBHOOK_SECRET,
    EmulatorProcess,
    Receiver,
    _start_receiver,
    make_emulator,
)
from tests.support import wait_until

PASSWORD = "correct horse battery"
# The page refreshes itself every 5 s; allow two refreshes on a busy machine.
REFRESH_TIMEOUT = 15_000


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver, server = _start_receiver()
    try:
        yield receiver
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[str]:
    process: EmulatorProcess = make_emulator(tmp_path_factory.mktemp("nojs-emulator"), receiver.url)
    process.start()
    try:
        yield process.url
    finally:
        process.stop()


@pytest.fixture(scope="module")
def live_server_env(emulator: str) -> dict[str, str]:
    return {"STRIPE_API_BASE": emulator, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}


def forward_webhooks(receiver: Receiver, live_server: LiveServer) -> None:
    """Every webhook the emulator sent so far, once checkout.session.completed is among them."""

    def arrived() -> list[tuple[bytes, str]] | None:
        with receiver.lock:
            deliveries = [(d.body, d.signature, d.event["type"]) for d in receiver.deliveries]
        if "checkout.session.completed" not in {kind for _, _, kind in deliveries}:
            return None
        return [(body, signature) for body, signature, _ in deliveries]

    for body, signature in wait_until(arrived, 15, "checkout.session.completed"):
        response = httpx.post(
            f"{live_server.url}/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 200, response.text


def test_the_pending_success_page_refreshes_itself_until_done(
    browser: Browser, live_server: LiveServer, emulator: str, receiver: Receiver
) -> None:
    context = browser.new_context(java_script_enabled=False, base_url=live_server.url)
    try:
        page = context.new_page()
        page.goto("/signup")
        page.get_by_label("Name").fill("No Script")
        page.get_by_label("Email").fill(unique_email("nojs-checkout"))
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_test_id("signup-submit").click()
        expect(page.get_by_test_id("current-plan")).to_contain_text("Free")

        page.goto("/billing/credits")
        page.get_by_test_id("buy-ai_100").click()
        expect(page).to_have_url(re.compile(rf"^{re.escape(emulator)}/checkout/cs_"))
        page.locator("input[name=card_number]").fill("4242 4242 4242 4242")
        page.locator("input[name=exp_date]").fill("12 / 34")
        page.locator("input[name=cvc]").fill("123")
        page.get_by_test_id("checkout-pay").click()

        expect(page).to_have_url(re.compile(r"/billing/checkout/success\?session_id=cs_"))
        status = page.get_by_test_id("checkout-status")
        expect(status).to_have_attribute("data-state", "processing")
        expect(page.locator('noscript meta[http-equiv="refresh"]')).to_have_count(1)
        check_again = page.get_by_test_id("checkout-check-again")
        expect(check_again).to_be_visible()
        check_again.click()  # a plain link: checks again without a script
        expect(status).to_have_attribute("data-state", "processing")

        forward_webhooks(receiver, live_server)
        # No script polls and nobody clicks: the meta refresh brings the result.
        expect(status).to_have_attribute("data-state", "done", timeout=REFRESH_TIMEOUT)
        expect(page.get_by_test_id("credits-balance")).to_have_text("100")
        expect(page.get_by_test_id("checkout-check-again")).to_have_count(0)
        # ... and, done, it returns to the credits page by itself (issue 21, item 7).
        expect(page).to_have_url(f"{live_server.url}/billing/credits", timeout=REFRESH_TIMEOUT)
    finally:
        context.close()
