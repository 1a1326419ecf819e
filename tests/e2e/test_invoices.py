"""Invoices in real Chromium: after paying for Business through Checkout and an immediate
downgrade to Pro (made at the emulator, invoiced at once), the invoice list names each invoice
and shows cents, the downgrade's invoice is a credit, and the credit balance shows on the
dashboard and the invoices page. Screenshots at 1280 and 375 px go to $SHOTS_DIR if set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer

# The Checkout tests' server and emulator (one server per distinct environment): their
# module fixtures, imported, configure this module's `live_server` the same way.
from tests.e2e.test_checkout import (  # noqa: F401
    EMULATOR,
    WEBHOOK_TIMEOUT,
    assert_fits_a_phone,
    emulator_ready,
    live_server_args,
    live_server_env,
    pay_and_wait,
    sign_up,
)
from tests.support import wait_until

AUTH = {"Authorization": "Bearer sk_test_emulator"}


def stripe(method: str, path: str, **data: Any) -> Any:
    sent = {"params": data} if method == "GET" else {"data": data}
    response = httpx.request(method, f"{EMULATOR}{path}", headers=AUTH, **sent)
    assert response.status_code == 200, response.text
    return response.json()


def shoot(page: Page, name: str) -> None:
    folder = os.environ.get("SHOTS_DIR")
    if not folder:
        return
    size = page.viewport_size
    for width in (1280, 375):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(Path(folder) / f"{name}-{width}.png"), full_page=True)
    if size:
        page.set_viewport_size(size)


def test_invoice_list_detail_and_credit_after_a_downgrade(page: Page, live_server: LiveServer):
    email = sign_up(page)

    page.goto("/billing/upgrade")
    page.get_by_test_id("checkout-business-monthly").click()
    pay_and_wait(page)

    # An immediate downgrade to Pro at Stripe, invoiced at once: unused Business time comes
    # back as credit on the customer's balance.
    (customer,) = stripe("GET", "/v1/customers", email=email)["data"]
    (sub,) = stripe("GET", "/v1/subscriptions", customer=customer["id"])["data"]
    item = sub["items"]["data"][0]
    (pro,) = stripe("GET", "/v1/prices", **{"lookup_keys[]": "plan_pro_monthly"})["data"]
    stripe(
        "POST",
        f"/v1/subscriptions/{sub['id']}",
        **{
            "items[0][id]": item["id"],
            "items[0][price]": pro["id"],
            "proration_behavior": "always_invoice",
        },
    )
    credit = stripe("GET", "/v1/customers/" + customer["id"])["balance"]
    assert credit < 0
    credit_text = f"${-credit / 100:,.2f}"

    def credit_shown() -> bool:
        # The balance arrives by webhook after the downgrade: each look is a fresh page.
        page.goto("/billing/invoices")
        balance = page.get_by_test_id("credit-balance")
        return balance.count() > 0 and f"{credit_text} credit" in balance.inner_text()

    wait_until(credit_shown, timeout=WEBHOOK_TIMEOUT / 1000, what="the credit balance")
    expect(page.get_by_test_id("credit-balance")).to_contain_text(
        f"{credit_text} credit, applied to your next invoices"
    )
    page.reload()
    rows = page.get_by_test_id("invoice-table").locator("tbody tr")
    expect(rows).to_have_count(2, timeout=WEBHOOK_TIMEOUT)
    newest, first = rows.nth(0), rows.nth(1)
    expect(first.get_by_test_id("invoice-description")).to_have_text("Business · monthly")
    expect(first.get_by_test_id("invoice-amount")).to_have_text("$149.00")
    expect(first.get_by_test_id("invoice-status")).to_have_text("Paid")
    expect(newest.get_by_test_id("invoice-description")).to_have_text("Proration for plan change")
    expect(newest.get_by_test_id("invoice-amount")).to_have_text(f"{credit_text} credit")
    expect(newest.get_by_test_id("invoice-status")).to_have_text("Credit to balance")
    # Amounts are right-aligned.
    align = first.get_by_test_id("invoice-amount").evaluate("el => getComputedStyle(el).textAlign")
    assert align == "right"
    assert_fits_a_phone(page)
    shoot(page, "invoices")

    first.get_by_test_id("invoice-description").click()
    expect(page.get_by_test_id("invoice-title")).to_have_text("Business · monthly")
    expect(page.get_by_test_id("invoice-payment")).to_contain_text("Visa ending in 4242")
    expect(page.get_by_test_id("invoice-totals")).to_contain_text("$149.00")
    for testid in ("invoice-hosted", "invoice-pdf"):
        href = page.get_by_test_id(testid).get_attribute("href") or ""
        assert href.startswith(EMULATOR), href
        assert page.request.get(href).ok
    assert_fits_a_phone(page)
    shoot(page, "invoice-detail")

    page.goto("/billing/invoices")
    rows.nth(0).get_by_test_id("invoice-description").click()
    expect(page.get_by_test_id("invoice-title")).to_have_text("Proration for plan change")
    expect(page.get_by_test_id("proration-badge")).to_have_count(2)
    lines = page.get_by_test_id("invoice-lines")
    expect(lines).to_contain_text("Unused time on Business · monthly")
    expect(lines).to_contain_text("Remaining time on Pro · monthly")
    shoot(page, "invoice-credit")

    page.goto("/billing")
    expect(page.get_by_test_id("credit-balance")).to_contain_text(
        f"{credit_text} credit, applied to your next invoices"
    )
    expect(page.locator("body")).to_contain_text("Business · monthly")
    assert_fits_a_phone(page)
    shoot(page, "dashboard")
