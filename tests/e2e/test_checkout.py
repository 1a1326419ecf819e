"""Stripe Checkout in real Chromium: `billing-portal serve` starts the emulator, whose webhooks
reach the portal at PUBLIC_URL/webhooks/stripe, as Stripe's would. Also what follows a
Checkout: canceling the plan and removing a card, each after a confirm page; a SEPA Direct
Debit saved at Stripe on the payment methods page."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import stripe
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer, unique_email
from tests.e2e.emulator import serve_with_emulator
from tests.support import free_port, wait_until

EMULATOR_PORT = free_port()
EMULATOR = f"http://127.0.0.1:{EMULATOR_PORT}"
PASSWORD = "correct horse battery"
# The webhook has to land before the page flips; the emulator retries fast in tests.
WEBHOOK_TIMEOUT = 15_000
SHOTS = Path("/tmp/shots")


live_server_env, live_server_args, emulator_ready = serve_with_emulator(EMULATOR_PORT)


def sign_up(page: Page) -> str:
    email = unique_email("checkout")
    page.goto("/signup")
    page.get_by_label("Name").fill("Grace")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("current-plan")).to_contain_text("Free")
    return email


def assert_fits_a_phone(page: Page) -> None:
    """The page at 375 px wide does not scroll sideways."""
    size = page.viewport_size
    page.set_viewport_size({"width": 375, "height": 780})
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at 375px"
    if size:
        page.set_viewport_size(size)


def pay(page: Page, card: str) -> None:
    expect(page).to_have_url(re.compile(rf"^{re.escape(EMULATOR)}/checkout/cs_"))
    page.locator("input[name=card_number]").fill(card)
    page.locator("input[name=exp_date]").fill("12 / 34")
    page.locator("input[name=cvc]").fill("123")
    page.get_by_test_id("checkout-pay").click()


def pay_and_wait(page: Page) -> str:
    """Pay with a card that works, and wait until the success page says it is done; the
    success page's URL (the page returns to billing by itself a moment later)."""
    pay(page, "4242 4242 4242 4242")
    expect(page).to_have_url(re.compile(r"/billing/checkout/success\?session_id=cs_"))
    success = page.url
    expect(page.get_by_test_id("checkout-status")).to_have_attribute(
        "data-state", "done", timeout=WEBHOOK_TIMEOUT
    )
    return success


def test_upgrade_at_the_80_percent_prompt_and_read_the_invoice(page: Page, live_server: LiveServer):
    sign_up(page)
    bar = page.get_by_test_id("meter-ai_requests").get_by_role("progressbar")
    for used in range(1, 17):  # 16 of the free plan's 20 AI requests a day: 80 %
        page.get_by_test_id("try-it").click()
        # The bar, not the htmx notice: a click before htmx is set up posts the plain form.
        expect(bar).to_have_attribute("aria-valuenow", str(used * 5))
    prompt = page.get_by_test_id("upgrade-prompt")
    expect(prompt).to_be_visible()
    prompt.get_by_role("link").first.click()

    expect(page).to_have_url(re.compile(r"/billing/upgrade"))
    page.get_by_test_id("checkout-pro-monthly").click()
    pay(page, "4242 4242 4242 4242")

    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/billing/checkout/success"))
    status = page.get_by_test_id("checkout-status")
    expect(status).to_have_attribute("data-state", "done", timeout=WEBHOOK_TIMEOUT)
    expect(page.get_by_test_id("checkout-result")).to_have_text("You are on Pro")
    expect(page.get_by_test_id("plan-limits")).to_contain_text("1,000")
    expect(page.get_by_test_id("back-to-billing")).to_have_count(1)  # one link, no second

    # The page returns to billing by itself (issue 21, item 7), where the new plan shows.
    expect(page).to_have_url(f"{live_server.url}/billing")
    expect(page.get_by_test_id("current-plan")).to_contain_text("Pro")
    expect(page.get_by_test_id("plan-state")).to_have_attribute("data-state", "trialing")
    expect(page.get_by_test_id("upgrade-prompt")).to_have_count(0)  # 16 of 1,000 now
    expect(page.locator("body")).to_contain_text("1,000")

    page.goto("/billing/invoices")
    row = page.get_by_test_id("invoice-table").locator("tbody tr").first
    expect(row).to_be_visible()
    # The trial's $0 invoice: what it is for, and not "Paid".
    expect(row.get_by_test_id("invoice-description")).to_have_text("Pro · monthly (trial)")
    expect(row.get_by_test_id("invoice-status")).to_have_text("Trial — $0.00")
    row.get_by_test_id("invoice-description").click()
    links = [page.get_by_test_id("invoice-hosted"), page.get_by_test_id("invoice-pdf")]
    for link in links:
        href = link.get_attribute("href")
        assert href and href.startswith(EMULATOR), href
        response = page.request.get(href)
        assert response.ok, (href, response.status)
    pdf = page.request.get(links[1].get_attribute("href") or "")
    assert pdf.headers["content-type"].startswith("application/pdf")


def test_declined_card_shows_stripes_error_and_keeps_the_plan(page: Page, live_server: LiveServer):
    sign_up(page)
    page.goto("/billing/upgrade")
    page.get_by_test_id("checkout-business-monthly").click()
    pay(page, "4000 0000 0000 0002")
    expect(page.get_by_test_id("checkout-error")).to_contain_text("Your card was declined.")
    page.goto(f"{live_server.url}/billing")
    expect(page.get_by_test_id("current-plan")).to_contain_text("Free")


def test_buying_a_credit_pack_raises_the_balance_once(page: Page, live_server: LiveServer):
    sign_up(page)
    page.goto("/billing/credits")
    page.get_by_test_id("buy-ai_100").click()
    success = pay_and_wait(page)
    expect(page.get_by_test_id("credits-balance")).to_have_text("100")
    page.goto(success)  # a second visit of the success page grants nothing more
    expect(page.get_by_test_id("credits-balance")).to_have_text("100")
    page.goto("/billing/credits")
    expect(page.get_by_test_id("credits-ai_requests")).to_contain_text("100 left")
    page.goto("/billing/invoices")
    expect(page.get_by_test_id("invoice-table")).to_contain_text("$10")


def test_cancel_plan_asks_first_and_keep_my_plan_changes_nothing(
    page: Page, live_server: LiveServer
):
    sign_up(page)
    page.goto("/billing/upgrade")
    page.get_by_test_id("checkout-pro-monthly").click()
    pay_and_wait(page)
    expect(page).to_have_url(f"{live_server.url}/billing")  # by itself
    expect(page.get_by_test_id("plan-status")).to_have_text("Trial")
    trial = re.search(
        r"until (\w{3} \d{1,2}, \d{4});", page.get_by_test_id("plan-state").inner_text()
    )
    assert trial, page.get_by_test_id("plan-state").inner_text()
    renews_on = trial.group(1)

    page.get_by_test_id("cancel-plan").click()
    expect(page).to_have_url(f"{live_server.url}/billing/subscription/cancel")
    expect(page.get_by_role("heading", level=1)).to_have_text("Cancel your Pro plan?")
    expect(page.get_by_test_id("cancel-keep")).to_have_text(
        f"You keep Pro until {renews_on} (end of the current period); after that you move to "
        "Free and its limits apply."
    )
    expect(page.get_by_test_id("cancel-trial")).to_have_text(
        "Your free trial ends then, with no charge."
    )
    expect(page.get_by_test_id("free-limits")).to_contain_text("20 a day")
    assert_fits_a_phone(page)

    # "Keep my plan", and the browser's Back, leave the plan as it was.
    page.get_by_role("link", name="Keep my plan").click()
    expect(page).to_have_url(f"{live_server.url}/billing")
    page.get_by_test_id("cancel-plan").click()
    expect(page.get_by_test_id("confirm-cancel")).to_be_visible()
    page.go_back()
    expect(page).to_have_url(f"{live_server.url}/billing")
    page.reload()
    expect(page.get_by_test_id("plan-status")).to_have_text("Trial")
    expect(page.get_by_test_id("plan-state")).to_contain_text(f"until {renews_on}")
    expect(page.get_by_test_id("plan-state")).to_have_attribute("data-state", "trialing")

    page.get_by_test_id("cancel-plan").click()
    page.get_by_role("button", name="Cancel plan").click()
    expect(page).to_have_url(f"{live_server.url}/billing")
    expect(page.get_by_test_id("plan-status")).to_have_text("Canceling")
    expect(page.get_by_test_id("plan-state")).to_have_text(
        f"Your trial ends on {renews_on} and Pro ends with it. Nothing is charged."
    )
    expect(page.locator(".flash")).to_contain_text("then you move to Free")
    expect(page.get_by_test_id("cancel-plan")).to_have_count(0)


def test_removing_a_card_asks_first_without_javascript(browser: Browser, live_server: LiveServer):
    context = browser.new_context(java_script_enabled=False, base_url=live_server.url)
    try:
        page = context.new_page()
        sign_up(page)
        page.goto("/billing/payment-methods")
        page.get_by_test_id("add-card").click()
        pay(page, "4242 4242 4242 4242")
        # No script polls: the success page refreshes itself (every 5 s) until the webhook landed.
        expect(page.get_by_test_id("checkout-result")).to_have_text(
            "Payment method added", timeout=WEBHOOK_TIMEOUT + 5_000
        )
        page.goto("/billing/payment-methods")
        card = page.locator(".pm").filter(has_text="4242")
        expect(card).to_have_count(1)

        card.get_by_role("link", name="Remove card ending 4242").click()
        expect(page).to_have_url(re.compile(r"/billing/payment-methods/pm_\w+/remove$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Remove this card?")
        expect(page.get_by_test_id("confirm-card")).to_contain_text("Visa •••• 4242")
        expect(page.get_by_test_id("confirm-card")).to_contain_text("expires 12/2034")
        expect(page.get_by_test_id("confirm-summary")).to_contain_text("detached")
        assert_fits_a_phone(page)
        page.get_by_role("link", name="Keep it").click()
        expect(page).to_have_url(f"{live_server.url}/billing/payment-methods")
        expect(card).to_have_count(1)

        card.get_by_role("link", name="Remove card ending 4242").click()
        page.get_by_role("button", name="Remove card ending 4242").click()
        expect(page).to_have_url(f"{live_server.url}/billing/payment-methods")
        expect(page.locator(".flash")).to_have_text("Visa •••• 4242 was removed.")
        expect(page.get_by_test_id("cards-empty")).to_be_visible()
    finally:
        context.close()


def _attach_sepa_at_stripe(email: str) -> str:
    """A SEPA Direct Debit saved to the customer at Stripe (as Checkout would save it), and its
    `payment_method.attached` webhook delivered to the portal; the payment method's id."""
    client = stripe.StripeClient("sk_test_e2e", base_addresses={"api": EMULATOR})
    customer = client.v1.customers.list({"email": email}).data[0]
    pm = client.v1.payment_methods.create(
        params={
            "type": "sepa_debit",
            "sepa_debit": {"iban": "DE89 3704 0044 0532 0130 00"},
            "billing_details": {"name": "Jenny Rosen", "email": email},
        }
    )
    client.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
    event = next(
        e
        for e in client.v1.events.list({"type": "payment_method.attached"}).data
        if e.data.object["id"] == pm.id
    )

    def delivered() -> bool:
        rows = httpx.get(f"{EMULATOR}/_emulator/webhook_deliveries").json()["data"]
        return any(r["event_id"] == event.id and r["delivered_at"] for r in rows)

    wait_until(delivered, WEBHOOK_TIMEOUT / 1000, "payment_method.attached at the portal")
    return pm.id


def test_a_sepa_debit_is_listed_made_default_and_kept_last(page: Page, live_server: LiveServer):
    """The payment methods page with a SEPA Direct Debit saved at Stripe beside the card of
    a paid plan: listed with its label, made the default (the dashboard shows it), the card
    removed, and the SEPA debit kept as the plan's only payment method. Screenshots at 1280
    and 375 px go to /tmp/shots/."""
    email = sign_up(page)
    page.goto("/billing/upgrade")
    page.get_by_test_id("checkout-pro-monthly").click()
    pay_and_wait(page)
    sepa_id = _attach_sepa_at_stripe(email)

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/billing/payment-methods")
    expect(page.get_by_role("heading", name="Your payment methods")).to_be_visible()
    sepa = page.get_by_test_id(f"card-{sepa_id}")
    expect(sepa.get_by_test_id("pm-label")).to_have_text("SEPA Direct Debit •••• 3000")
    card = page.locator(".pm[data-type=card]")
    expect(card.get_by_test_id("pm-label")).to_have_text("Visa •••• 4242")
    expect(card.get_by_test_id("card-default")).to_be_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "payment-methods-sepa-1280.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 780})
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 375px"
    page.screenshot(path=str(SHOTS / "payment-methods-sepa-375.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    sepa.get_by_role("button", name="Make default (SEPA Direct Debit ending 3000)").click()
    expect(page.locator(".flash")).to_have_text(
        "SEPA Direct Debit •••• 3000 is now your default payment method."
    )
    expect(page.get_by_test_id(f"card-{sepa_id}").get_by_test_id("card-default")).to_be_visible()
    page.goto("/billing")
    expect(page.get_by_test_id("default-payment-method")).to_have_text(
        "SEPA Direct Debit •••• 3000"
    )

    page.goto("/billing/payment-methods")
    page.locator(".pm[data-type=card]").get_by_role("link", name="Remove card ending 4242").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Remove this card?")
    page.get_by_role("button", name="Remove card ending 4242").click()
    expect(page.locator(".flash")).to_have_text("Visa •••• 4242 was removed.")
    # The SEPA debit is the paid plan's only payment method now: it cannot be removed.
    expect(page.locator(".pm")).to_have_count(1)
    expect(page.get_by_test_id("cannot-remove")).to_contain_text("only payment method")
    page.screenshot(path=str(SHOTS / "payment-methods-sepa-only-1280.png"), full_page=True)
