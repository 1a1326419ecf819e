"""A paying customer's plan change in real Chromium: the review page shows Stripe's preview
(today's charge, its lines, the card, the renewal, the quotas) and nothing changes until its
confirm; a downgrade is scheduled for the period end and "Keep" calls it off; a card that asks
for 3-D Secure changes the plan only once the bank confirms on Stripe's invoice page; a
double-clicked (or twice-sent) confirm charges once."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.emulator import serve_with_emulator
from tests.e2e.test_checkout import sign_up
from tests.support import free_port, wait_until

EMULATOR_PORT = free_port()
EMULATOR = f"http://127.0.0.1:{EMULATOR_PORT}"
WEBHOOK_TIMEOUT = 15_000


live_server_env, live_server_args, emulator_ready = serve_with_emulator(EMULATOR_PORT)


VISA = "4242 4242 4242 4242"
THREE_D_SECURE = "4000 0027 6000 3184"  # the bank asks on every payment


def subscribe(page: Page, plan: str, card: str = VISA) -> str:
    """A new user on `plan` (its trial, if it has one) through Checkout; returns the email."""
    email = sign_up(page)
    page.goto("/billing/upgrade")
    page.get_by_test_id(f"checkout-{plan}-monthly").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(EMULATOR)}/checkout/cs_"))
    page.locator("input[name=card_number]").fill(card)
    page.locator("input[name=exp_date]").fill("12 / 34")
    page.locator("input[name=cvc]").fill("123")
    page.get_by_test_id("checkout-pay").click()
    if card == THREE_D_SECURE:  # Checkout's own authentication step
        page.get_by_test_id("authentication-complete").click()
    expect(page.get_by_test_id("checkout-status")).to_have_attribute(
        "data-state", "done", timeout=WEBHOOK_TIMEOUT
    )
    page.goto("/billing/payment-methods")  # the card's webhook has arrived
    expect(page.locator(".pm").filter(has_text=card[-4:])).to_be_visible(timeout=WEBHOOK_TIMEOUT)
    return email


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
    renewal = page.get_by_test_id("plan-state").inner_text()
    ends = re.search(r"Renews on (.+) at ", renewal)
    assert ends, renewal
    page.goto("/billing/upgrade")
    page.get_by_test_id("checkout-pro-monthly").click()

    expect(page.get_by_test_id("review-today")).to_contain_text("Nothing is charged today")
    expect(page.get_by_test_id("review-renewal-amount")).to_have_text("$29")
    page.get_by_test_id("confirm-change").click()

    expect(page).to_have_url(f"{live_server.url}/billing")
    scheduled = page.get_by_test_id("plan-state")
    expect(scheduled).to_have_text(
        f"Changes to Pro on {ends.group(1)}. You keep Business until then."
    )
    expect(page.get_by_test_id("current-plan")).to_contain_text("Business")
    page.get_by_test_id("keep-plan").click()
    expect(page.locator(".flash")).to_contain_text("You keep Business; it renews as usual.")
    expect(page.get_by_test_id("plan-state")).to_have_attribute("data-state", "active")
    expect(page.get_by_test_id("current-plan")).to_contain_text("Business")


def _confirm_upgrade_needing_authentication(page: Page, live_server: LiveServer) -> None:
    """Pro's trial with the 3-D Secure card → Business: the confirm leads to Stripe's invoice
    page, and until the bank confirms, the portal says the change waits for it."""
    subscribe(page, "pro", THREE_D_SECURE)
    page.goto("/billing/subscription/review?plan=business&interval=month")
    expect(page.get_by_test_id("review-card")).to_contain_text("ending in 3184")
    page.get_by_test_id("confirm-change").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(EMULATOR)}/invoice/in_"))
    expect(page.get_by_test_id("authentication")).to_be_visible()
    hosted = page.url

    page.goto("/billing")
    expect(page.get_by_test_id("pending-change")).to_contain_text(
        "Your change to Business is waiting for your bank's confirmation."
    )
    expect(page.get_by_test_id("current-plan")).to_contain_text("Pro")
    banner = page.get_by_test_id("payment-action-banner")
    expect(banner).to_contain_text("Your bank needs you to confirm a payment of $149.00")
    page.goto("/billing/upgrade")  # every billing page shows it
    expect(page.get_by_test_id("payment-action-banner")).to_be_visible()
    page.get_by_test_id("confirm-payment").click()
    expect(page).to_have_url(hosted)


def test_a_3d_secure_card_upgrades_only_after_authentication(page: Page, live_server: LiveServer):
    _confirm_upgrade_needing_authentication(page, live_server)
    page.get_by_test_id("authentication-complete").click()
    expect(page.get_by_test_id("invoice-status")).to_have_text("paid")

    page.goto("/billing")

    def upgraded() -> bool:  # Stripe's webhooks apply the change (each look: a fresh page)
        page.reload()
        return (
            "Business" in page.get_by_test_id("current-plan").inner_text()
            and page.get_by_test_id("pending-change").count() == 0
            and page.get_by_test_id("payment-action-banner").count() == 0
        )

    wait_until(upgraded, WEBHOOK_TIMEOUT / 1000, "Business after the authentication")
    expect(page.get_by_test_id("plan-status")).to_have_text("Active")


def test_a_3d_secure_card_stays_unchanged_when_authentication_fails(
    page: Page, live_server: LiveServer
):
    _confirm_upgrade_needing_authentication(page, live_server)
    page.get_by_test_id("authentication-fail").click()
    expect(page.get_by_test_id("invoice-error")).to_contain_text("unable to authenticate")
    expect(page.get_by_test_id("invoice-status")).to_have_text("open")

    page.goto("/billing")
    expect(page.get_by_test_id("current-plan")).to_contain_text("Pro")
    expect(page.get_by_test_id("plan-status")).to_have_text("Trial")
    expect(page.get_by_test_id("pending-change")).to_contain_text("Business")


def _paid_invoices(email: str) -> list[dict[str, object]]:
    key = {"Authorization": "Bearer sk_test_e2e"}
    found = httpx.get(f"{EMULATOR}/v1/customers", params={"email": email}, headers=key).json()
    (customer,) = found["data"]
    invoices = httpx.get(
        f"{EMULATOR}/v1/invoices", params={"customer": customer["id"]}, headers=key
    ).json()["data"]
    return [i for i in invoices if i["amount_paid"] > 0]


def test_a_double_clicked_confirm_charges_once(page: Page, live_server: LiveServer):
    email = subscribe(page, "pro")  # Pro's trial: nothing paid yet
    page.goto("/billing/subscription/review?plan=business&interval=month")
    page.get_by_test_id("confirm-change").dblclick(no_wait_after=True)
    expect(page).to_have_url(f"{live_server.url}/billing")
    expect(page.get_by_test_id("current-plan")).to_contain_text("Business")
    wait_until(lambda: _paid_invoices(email), WEBHOOK_TIMEOUT / 1000, "the $149 charge")
    assert [i["amount_paid"] for i in _paid_invoices(email)] == [14_900]


def test_a_confirm_sent_twice_at_once_charges_once(page: Page, live_server: LiveServer):
    """Without the page's script (any client may send the form twice): the same review's
    confirm, posted twice at the same moment, is one change and one charge at Stripe."""
    email = subscribe(page, "pro")
    page.goto("/billing/subscription/review?plan=business&interval=month")
    form = page.locator('form[action="/billing/subscription/change"]')
    names = ("_csrf_token", "plan", "interval", "proration_date", "amount", "reviewed_at")
    fields = {
        name: form.locator(f'input[name="{name}"]').input_value()
        for name in (*names, "review_id", "signature")
    }
    cookies = {c["name"]: c["value"] for c in page.context.cookies(live_server.url)}

    def post() -> int:
        with httpx.Client(base_url=live_server.url, cookies=cookies) as client:
            return client.post("/billing/subscription/change", data=fields).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = list(pool.map(lambda _: post(), range(2)))
    assert statuses == [303, 303]
    page.goto("/billing")
    expect(page.get_by_test_id("current-plan")).to_contain_text("Business")
    wait_until(lambda: _paid_invoices(email), WEBHOOK_TIMEOUT / 1000, "the $149 charge")
    assert [i["amount_paid"] for i in _paid_invoices(email)] == [14_900]
