"""Issue 21, item 11: the audit log names people by email and reads as sentences; API keys are
Test or Live by the Stripe mode, and keys of both prefixes (old `bp_live_` ones too) work;
confirm pages keep the admin sub-navigation."""

from __future__ import annotations

import re
import secrets
from dataclasses import replace

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import AuditLog
from app.apikeys.deps import provide_api_key_service
from app.apikeys.models import ApiKey
from app.apikeys.service import ApiKeyService, hash_key
from app.billing.models import Invoice
from app.catalog.models import Catalog
from app.config import Settings
from app.customers.models import Customer
from app.lib.clock import utcnow
from tests.integration.admin.conftest import Admin, audit_entries, make_customer


def _row(html: str, entry_id: int) -> str:
    return html.split(f'data-testid="audit-{entry_id}"', 1)[1].split("</tr>", 1)[0]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


async def test_the_audit_log_names_people_by_email_and_reads_as_sentences(
    admin: Admin, session: AsyncSession, catalog: Catalog
) -> None:
    ann = await make_customer(session, catalog, f"ann_{secrets.token_hex(3)}@example.com")
    gone = await make_customer(session, catalog, f"gone_{secrets.token_hex(3)}@example.com")
    response = await admin.confirm_and_post(
        f"/admin/billing/customers/{ann.external_id}/confirm",
        reason="Goodwill",
        action="grant_credits",
        meter="ai_requests",
        amount="1500",
    )
    assert response.status_code == 303, response.text
    invoice = Invoice(
        customer_id=ann.id,
        stripe_invoice_id=f"in_{secrets.token_hex(6)}",
        number="INV-0004",
        status="paid",
        currency="usd",
    )
    refund = AuditLog(
        actor_user_id=10**9,  # an admin whose account is gone
        actor_email="former@example.com",
        action="invoice.refund",
        target_type="customer",
        target_id=ann.external_id,
        reason="Charged twice",
        details={
            "object": invoice.stripe_invoice_id,
            "amount": 1200,
            "currency": "usd",
            "refund_reason": "duplicate",
            "mirror": "applied",
        },
    )
    on_gone = AuditLog(
        actor_user_id=None,
        actor_email="system: daily reconcile",
        action="something.new",  # no formatter: readable pairs, not JSON
        target_type="customer",
        target_id=gone.external_id,
        details={"seats_added": 3, "notify": False},
    )
    session.add_all([invoice, refund, on_gone])
    await session.commit()
    # The customer's account was deleted since: email and name gone, the row kept.
    await session.execute(
        update(Customer)
        .where(Customer.id == gone.id)
        .values(email=None, name=None, deleted_at=utcnow())
    )
    await session.commit()

    page = await admin.client.get("/admin/billing/audit")
    assert page.status_code == 200
    [entry] = await audit_entries(session, "grant_credits")
    grant = _text(_row(page.text, entry.id))
    assert admin.email in grant and ann.email in grant  # who, and whom, by email
    assert "Granted 1,500 AI requests credits, no expiry" in grant
    assert "meter=" not in page.text and "amount=" not in page.text  # no key=value dump
    assert f'<a href="/admin/billing/customers/{ann.external_id}">{ann.email}</a>' in page.text

    refunded = _text(_row(page.text, refund.id))
    assert "former@example.com deleted user" in refunded
    assert "Refunded $12.00 of invoice INV-0004 — reason: duplicate payment" in refunded
    assert "applied" not in refunded  # internal bookkeeping stays out

    other = _text(_row(page.text, on_gone.id))
    assert f"Deleted customer {gone.external_id}" in other
    assert "Seats added: 3; Notify: no" in other and "System daily reconcile" in other

    # The customer's own page lists the same actions in words.
    detail = await admin.client.get(f"/admin/billing/customers/{ann.external_id}")
    actions = _text(detail.text.split('data-testid="customer-audit"', 1)[1].split("</ul>", 1)[0])
    assert f"{admin.email}: Grant credits — Goodwill" in actions
    assert "Granted 1,500 AI requests credits, no expiry" in actions
    assert "grant_credits" not in actions

    # The customer's email finds the entries about them.
    found = await admin.client.get("/admin/billing/audit", params={"q": ann.email.upper()})
    assert "2 entries" in found.text and "Goodwill" in found.text


async def test_keys_of_both_prefixes_and_old_ones_authenticate(
    admin: Admin, session: AsyncSession, settings: Settings
) -> None:
    _test, test_raw = await ApiKeyService(session, "bp_test_").create("made in test mode")
    live_service = provide_api_key_service(
        session, replace(settings, stripe_secret_key="sk_live_x")
    )
    _live, live_raw = await live_service.create("made in live mode")
    assert test_raw.startswith("bp_test_") and live_raw.startswith("bp_live_")
    # A key made before test keys existed: stored exactly as the old code stored it.
    old_raw = "bp_live_" + secrets.token_urlsafe(32)
    session.add(ApiKey(name="from last year", prefix=old_raw[:14], key_hash=hash_key(old_raw)))
    await session.commit()

    for raw in (test_raw, live_raw, old_raw):
        response = await admin.client.get(
            "/api/v1/customers/nobody/balances", headers={"Authorization": f"Bearer {raw}"}
        )
        assert response.status_code == 404, raw[:8]  # authenticated; no such customer
    refused = await admin.client.get(
        "/api/v1/customers/nobody/balances", headers={"Authorization": "Bearer bp_test_nope"}
    )
    assert refused.status_code == 401

    listing = await admin.client.get("/admin/billing/api-keys")
    modes = dict(
        re.findall(r'<td data-label="Name">([^<]+)</td>.*?>(Test|Live)</span>', listing.text, re.S)
    )
    assert modes["made in test mode"] == "Test"
    assert modes["made in live mode"] == "Live" and modes["from last year"] == "Live"


async def test_the_new_key_has_a_copy_field_that_works_without_script(admin: Admin) -> None:
    page = await admin.client.get("/admin/billing/api-keys")
    created = await admin.client.post(
        "/admin/billing/api-keys",
        data={
            "_csrf_token": re.search(r'name="_csrf_token" value="([^"]+)"', page.text)[1],
            "request_id": re.search(r'name="request_id" value="([^"]+)"', page.text)[1],
            "name": "Copy me",
            "reason": "test",
        },
    )
    field = re.search(r"<input id=\"new-key-value\"[^>]*>", created.text)[0]
    assert " readonly " in field and 'value="bp_test_' in field
    # The Copy button waits for the script (hidden without it); its status is announced.
    assert re.search(
        r'<button type="button" class="button" data-copy="new-key-value" hidden', created.text
    )
    assert 'role="status" aria-live="polite" data-copy-status="new-key-value"' in created.text


async def test_confirm_pages_keep_the_admin_navigation(
    admin: Admin, session: AsyncSession, catalog: Catalog
) -> None:
    customer = await make_customer(session, catalog, f"nav_{secrets.token_hex(3)}@example.com")
    key, _raw = await ApiKeyService(session).create("to revoke")
    pages = {
        f"/admin/billing/customers/{customer.external_id}/confirm?action=grant_credits"
        "&meter=ai_requests&amount=5": "Customers",
        f"/admin/billing/api-keys/{key.id}/confirm": "API keys",
    }
    for url, current in pages.items():
        page = await admin.client.get(url)
        assert page.status_code == 200, url
        nav = page.text.split('aria-label="Admin"', 1)[1].split("</nav>", 1)[0]
        assert re.search(rf'aria-current="page"[^>]*>{current}</a>', nav), url
        assert page.text.index('aria-label="Admin"') < page.text.index('data-testid="confirm-')
