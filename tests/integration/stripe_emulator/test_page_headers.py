"""The emulator's hosted pages send the portal's security headers and hold no inline style or
script, so its CSP (no 'unsafe-inline') leaves them intact."""

from __future__ import annotations

import re

import httpx
import stripe

from tests.integration.stripe_emulator.helpers import customer_with_card, monthly_price
from tests.integration.test_security_headers import assert_page_headers

INLINE = re.compile(r"<style|<script(?![^>]*\bsrc=)|\sstyle=|\son[a-z]+=", re.IGNORECASE)


def test_hosted_pages_carry_the_headers_and_no_inline_code(
    client: stripe.StripeClient, emulator: str
) -> None:
    customer, _ = customer_with_card(client)
    price = monthly_price(client, 1500)
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://portal.test/billing/success",
        }
    )
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    portal = client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "return_url": "https://portal.test/billing"}
    )
    for url in (emulator + "/", session.url, portal.url, invoice.hosted_invoice_url):
        page = httpx.get(url)
        assert page.status_code == 200, url
        assert_page_headers(page)
        assert not INLINE.search(page.text), (url, INLINE.search(page.text))
        assert '<link rel="stylesheet" href="/assets/emulator.css">' in page.text
    missing = httpx.get(emulator + "/checkout/cs_test_nope")
    assert missing.status_code == 404
    assert_page_headers(missing)
    declined = httpx.post(
        session.url,
        data={"card_number": "4000 0000 0000 0002", "exp_date": "12 / 34", "cvc": "123"},
    )
    assert declined.status_code == 402  # the form again, with the card error
    assert_page_headers(declined)

    css = httpx.get(emulator + "/assets/emulator.css")
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.headers["x-content-type-options"] == "nosniff"
    assert "font-family" in css.text


def test_hosted_pages_have_a_favicon(emulator: str) -> None:
    """Issue 21, item 10: no 404 for the icon on the emulator's pages either."""
    page = httpx.get(emulator + "/")
    assert '<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">' in page.text
    for path in ("/assets/favicon.svg", "/favicon.ico"):
        icon = httpx.get(emulator + path)
        assert icon.status_code == 200, path
        assert icon.headers["content-type"] == "image/svg+xml"
        assert icon.content.startswith(b"<svg")
