"""Auto top-up in real Chromium (issue 20, item 3): a customer turns it on on the credits page,
the SaaS's usage (through the API with a key) takes the balance below the threshold, and the
worker inside `serve` buys the pack off-session at the emulator `serve` started: the page
shows the new credits after a reload, and the email is in the outbox."""

from __future__ import annotations

import re
import secrets
import time

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from app.customers.models import Customer
from app.notifications.models import EmailOutboxMessage
from tests.e2e.conftest import LiveServer, run_async
from tests.e2e.emulator import emulator_env, serve_with_emulator
from tests.factories import database_session
from tests.support import free_port

EMULATOR_PORT = free_port()
EMULATOR = f"http://127.0.0.1:{EMULATOR_PORT}"
WEBHOOK_TIMEOUT = 15_000
PURCHASE_SECONDS = 30  # the Stripe worker's round is 1 s; generous on a busy machine

_emulator_env, live_server_args, emulator_ready = serve_with_emulator(EMULATOR_PORT)


@pytest.fixture(scope="module")
def live_server_env() -> dict[str, str]:
    # The Stripe worker runs inside `serve` (the harness turns it off by default): it makes
    # the purchase.
    return {**emulator_env(EMULATOR_PORT), "RUN_WORKER": "1"}


@pytest.fixture(scope="module")
def api(live_server: LiveServer):
    key = live_server.cli("create-api-key", f"e2e-auto-{secrets.token_hex(3)}").split()[-1]
    with httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        yield client


def portal_login(page: Page, api: httpx.Client, external_id: str) -> None:
    body = {"customer": {"external_id": external_id, "email": f"{external_id}@example.com"}}
    assert api.post("/api/v1/customers", json=body).status_code == 200
    response = api.get(f"/api/v1/customers/{external_id}/portal_url")
    assert response.status_code == 200, response.text
    page.goto(response.json()["customer"]["portal_url"])
    expect(page).to_have_url(re.compile(r"/billing$"))


def add_card(page: Page) -> None:
    page.goto("/billing/payment-methods")
    page.get_by_test_id("add-card").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(EMULATOR)}/checkout/cs_"))
    page.locator("input[name=card_number]").fill("4242 4242 4242 4242")
    page.locator("input[name=exp_date]").fill("12 / 34")
    page.locator("input[name=cvc]").fill("123")
    page.get_by_test_id("checkout-pay").click()
    expect(page.get_by_test_id("checkout-result")).to_have_text(
        "Payment method added", timeout=WEBHOOK_TIMEOUT
    )


def use(api: httpx.Client, external_id: str, count: int) -> None:
    events = [
        {
            "transaction_id": f"e2e_{secrets.token_hex(8)}",
            "external_customer_id": external_id,
            "code": "ai_requests",
        }
        for _ in range(count)
    ]
    response = api.post("/api/v1/events/batch", json={"events": events})
    assert response.status_code == 200, response.text
    assert not [e for e in response.json()["events"] if "error" in e]


def reload_until(page: Page, locator: Locator, text: str, seconds: float) -> None:
    """Reload until `locator` shows `text` (the purchase happens in the background)."""
    deadline = time.monotonic() + seconds
    while True:
        page.reload()
        try:
            expect(locator).to_contain_text(text, timeout=1_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def outbox_kinds(database_url: str, external_id: str) -> list[str]:
    async def read() -> list[str]:
        async with database_session(database_url) as session:
            customer_id = await session.scalar(
                select(Customer.id).where(Customer.external_id == external_id)
            )
            found = await session.scalars(
                select(EmailOutboxMessage.kind).where(EmailOutboxMessage.customer_id == customer_id)
            )
            return list(found.all())

    return run_async(read)


def test_turn_on_auto_top_up_and_see_the_pack_bought(
    page: Page, live_server: LiveServer, api: httpx.Client
):
    external_id = f"e2e_auto_{secrets.token_hex(4)}"
    portal_login(page, api, external_id)
    add_card(page)

    page.goto("/billing/credits")
    expect(page.get_by_test_id("auto-top-up-status")).to_contain_text("Off")
    expect(page.get_by_test_id("credits-none")).to_be_visible()
    form = page.get_by_test_id("auto-top-up-form")
    form.get_by_test_id("auto-top-up-enabled").check()
    form.get_by_test_id("auto-top-up-pack").select_option("ai_100")
    form.get_by_test_id("auto-top-up-threshold").fill("15")
    form.get_by_test_id("auto-top-up-cap").fill("50")
    form.get_by_test_id("auto-top-up-save").click()
    expect(page.locator(".flash")).to_contain_text("Auto top-up is on")
    expect(page.locator(".flash")).to_contain_text("ending 4242")
    expect(page.get_by_test_id("auto-top-up-status")).to_contain_text("below 15")

    # The SaaS records 10 of the free plan's 20 AI requests: 10 left, below 15.
    use(api, external_id, 10)
    reload_until(page, page.get_by_test_id("credits-ai_requests"), "100 left", PURCHASE_SECONDS)
    expect(page.get_by_test_id("auto-top-up-purchases")).to_contain_text("bought")
    expect(page.get_by_test_id("auto-top-up-status")).to_contain_text("$10.00 of $50.00")
    expect(page.get_by_test_id("credit-ledger")).to_contain_text("100")
    assert "auto_top_up" in outbox_kinds(live_server.database_url, external_id)

    # Still 110 left: more usage above the threshold buys nothing more.
    use(api, external_id, 5)
    page.reload()
    expect(page.get_by_test_id("auto-top-up-purchases").locator("li")).to_have_count(1)
