"""The billing page in real Chromium: Try it, live usage from the API, and screenshots."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer, unique_email

PASSWORD = "correct horse battery"
# The meters partial polls every 3 s; allow a few polls on a busy machine.
LIVE_TIMEOUT = 12_000


@pytest.fixture(scope="module")
def api_key(live_server: LiveServer) -> str:
    return live_server.cli("create-api-key", f"e2e-billing-{secrets.token_hex(3)}").split()[-1]


@pytest.fixture
def api(live_server: LiveServer, api_key: str):
    with httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
    ) as client:
        yield client


def portal_login(page: Page, api: httpx.Client, external_id: str, **customer: str) -> None:
    """Create a customer through the API and open its portal link, as a SaaS's button would."""
    body = {"customer": {"external_id": external_id, **customer}}
    assert api.post("/api/v1/customers", json=body).status_code == 200
    response = api.get(f"/api/v1/customers/{external_id}/portal_url")
    assert response.status_code == 200, response.text
    page.goto(response.json()["customer"]["portal_url"])
    expect(page).to_have_url(str(api.base_url).rstrip("/") + "/billing")


def send_events(api: httpx.Client, external_id: str, count: int, code: str = "ai_requests") -> None:
    events = [
        {
            "transaction_id": f"e2e_{secrets.token_hex(8)}",
            "external_customer_id": external_id,
            "code": code,
            "properties": {},
        }
        for _ in range(count)
    ]
    response = api.post("/api/v1/events/batch", json={"events": events})
    assert response.status_code == 200, response.text
    assert not [e for e in response.json()["events"] if "error" in e]


def mark_page(page: Page) -> None:
    """A marker that a full reload would wipe out."""
    page.evaluate("window.__noReload = 'still here'")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__noReload") == "still here"


def test_try_it_until_the_prompt_and_the_exhausted_panel(page: Page, live_server: LiveServer):
    page.set_viewport_size({"width": 375, "height": 740})  # a phone: the result must show
    page.goto("/signup")
    page.get_by_label("Name").fill("Demo Newcomer")
    page.get_by_label("Email").fill(unique_email("try"))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("current-plan")).to_contain_text("Free")

    bar = page.get_by_test_id("meter-ai_requests").get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", "0")
    mark_page(page)
    try_it = page.get_by_test_id("try-it")
    for used in range(1, 17):
        try_it.click()
        expect(bar).to_have_attribute("aria-valuenow", str(used * 5))
        if used < 16:
            expect(page.get_by_test_id("upgrade-prompt")).to_have_count(0)
    expect(page.get_by_test_id("upgrade-prompt")).to_be_visible()
    expect(page.get_by_test_id("upgrade-prompt")).to_contain_text("80 %")
    expect(page.get_by_test_id("quota-exhausted")).to_have_count(0)

    for used in range(17, 21):
        try_it.click()
        expect(bar).to_have_attribute("aria-valuenow", str(used * 5))
    # The result shows under the button, on the phone's screen, in a live region.
    result = page.get_by_test_id("try-result")
    expect(result).to_contain_text("The fake AI answered")
    expect(result).to_be_in_viewport()
    expect(page.locator("#try-result")).to_have_attribute("aria-live", "polite")
    panel = page.get_by_test_id("quota-exhausted")
    expect(panel).to_be_visible()
    expect(panel.get_by_role("button", name="Upgrade to Pro")).to_be_visible()
    expect(panel.get_by_role("link", name="Buy credits")).to_be_visible()

    # At 100 %: no button that can only fail; it says why, and where to upgrade.
    expect(try_it).to_be_disabled()
    expect(page.locator("#try-result")).to_be_focused()  # not dropped to <body>
    reason = page.get_by_test_id("try-reason")
    expect(reason).to_contain_text("Quota used up — upgrade, or wait until")
    expect(reason.get_by_role("link", name="See plans and upgrade")).to_be_visible()
    expect(try_it).to_have_attribute("aria-describedby", "try-reason")
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_test_id("meter-ai_requests")).to_contain_text("20 / 20")
    # The full bar is red with "Used up", not ringed like a focused control.
    progress = page.get_by_test_id("meter-ai_requests").locator(".progress")
    assert progress.evaluate("e => getComputedStyle(e).outlineStyle") == "none"
    expect(page.get_by_test_id("meter-ai_requests")).to_contain_text("Used up")
    assert_not_reloaded(page)


def test_usage_from_the_api_shows_up_on_an_open_page(page: Page, api: httpx.Client):
    external_id = f"e2e_live_{secrets.token_hex(4)}"
    portal_login(page, api, external_id, email=f"{external_id}@example.com")
    bar = page.get_by_test_id("meter-ai_requests").get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", "0")
    mark_page(page)

    send_events(api, external_id, 17)  # another client: the SaaS backend
    expect(bar).to_have_attribute("aria-valuenow", "85", timeout=LIVE_TIMEOUT)
    expect(page.get_by_test_id("upgrade-prompt")).to_be_visible()
    expect(page.get_by_test_id("chart-ai_requests")).to_contain_text("17 today")

    send_events(api, external_id, 3)
    expect(page.get_by_test_id("quota-exhausted")).to_be_visible(timeout=LIVE_TIMEOUT)
    assert_not_reloaded(page)


def test_dashboard_screenshots_desktop_and_phone(
    page: Page, api: httpx.Client, output_path: str
) -> None:
    external_id = f"e2e_shot_{secrets.token_hex(4)}"
    portal_login(page, api, external_id, email=f"{external_id}@example.com", name="Screenshot Co")
    send_events(api, external_id, 16)
    send_events(api, external_id, 85, code="api_calls")
    page.reload()
    expect(page.get_by_test_id("upgrade-prompt")).to_be_visible()
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)

    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(out / "billing-desktop.png"), full_page=True)

    page.set_viewport_size({"width": 360, "height": 780})
    expect(page.get_by_test_id("meter-ai_requests")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 360px"
    page.screenshot(path=str(out / "billing-phone.png"), full_page=True)

    for name in ("billing-desktop.png", "billing-phone.png"):
        assert (out / name).stat().st_size > 10_000, name

    for path in (
        "/billing/upgrade",
        "/billing/credits",
        "/billing/invoices",
        "/billing/payment-methods",
    ):
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 360px"
        page.screenshot(path=str(out / f"{path.rsplit('/', 1)[1]}-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/billing/upgrade?interval=year")
    expect(page.get_by_test_id("checkout-pro-yearly")).to_be_visible()
    page.screenshot(path=str(out / "upgrade-desktop.png"), full_page=True)


def test_a_portal_link_without_javascript_asks_for_one_click(
    browser, live_server: LiveServer, api: httpx.Client
):
    """What a link preview sees (no script): a page with a button; the link stays usable."""
    external_id = f"e2e_nojs_{secrets.token_hex(4)}"
    body = {"customer": {"external_id": external_id, "name": "No Script"}}
    assert api.post("/api/v1/customers", json=body).status_code == 200
    url = api.get(f"/api/v1/customers/{external_id}/portal_url").json()["customer"]["portal_url"]
    context = browser.new_context(java_script_enabled=False, base_url=live_server.url)
    try:
        page = context.new_page()
        page.goto(url)
        expect(page.get_by_test_id("portal-enter")).to_be_visible()
        page.goto(url)  # opened twice: still unused
        page.get_by_test_id("portal-continue").click()
        expect(page).to_have_url(live_server.url + "/billing")
        expect(page.get_by_test_id("current-plan")).to_contain_text("Free")
    finally:
        context.close()
