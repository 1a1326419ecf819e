"""`/billing/settings` (usage emails on/off) and the admin Outbox page."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Catalog
from app.customers.models import Customer
from app.notifications.models import EmailOutboxMessage
from app.notifications.service import PAYMENT_FAILED, NotificationService
from tests.conftest import csrf_token, sibling_client
from tests.factories import log_in_new_admin, log_in_new_user
from tests.integration.notifications.conftest import PUBLIC_URL, make_customer


async def _usage_emails(session: AsyncSession, email: str) -> bool:
    value = await session.scalar(select(Customer.usage_emails).where(Customer.email == email))
    await session.commit()
    assert value is not None
    return value


async def test_settings_page_turns_usage_emails_off_and_on(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    await log_in_new_user(client, "ada@example.com")
    page = await client.get("/billing/settings")
    assert page.status_code == 200
    assert 'name="usage_emails"' in page.text and " checked" in page.text
    assert 'href="/billing/settings"' in page.text  # in the navigation

    token = await csrf_token(client, "/billing/settings")
    response = await client.post(
        "/billing/settings", data={"_csrf_token": token}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/billing/settings"
    assert await _usage_emails(session, "ada@example.com") is False
    page = await client.get("/billing/settings")
    assert "Usage emails are off" in page.text and " checked" not in page.text

    response = await client.post(
        "/billing/settings",
        data={"_csrf_token": token, "usage_emails": "on"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert await _usage_emails(session, "ada@example.com") is True


async def test_settings_need_login_and_csrf(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    response = await client.get("/billing/settings", follow_redirects=False)
    assert response.status_code == 303 and "/login" in response.headers["location"]
    await log_in_new_user(client, "bob@example.com")
    response = await client.post("/billing/settings", data={}, follow_redirects=False)
    assert response.status_code == 403
    assert await _usage_emails(session, "bob@example.com") is True


async def test_admin_outbox_lists_emails_and_shows_bodies(
    app: Litestar, client: AsyncTestClient[Litestar], session: AsyncSession, catalog: Catalog
) -> None:
    customer = await make_customer(session, catalog, "cus_outbox", email="inbox@example.com")

    class Invoice:
        number, hosted_invoice_url = "INV-9", None

    await NotificationService(session, PUBLIC_URL, catalog).enqueue(
        dedupe_key="payment_failed:in_9:evt_9",
        kind=PAYMENT_FAILED,
        customer=customer,
        subject="Your payment of $9 failed: please update your card",
        context={"invoice": Invoice(), "amount": "$9"},
    )
    await session.commit()

    await log_in_new_user(client, "user@example.com")
    assert (await client.get("/admin/billing/outbox")).status_code == 403

    admin = sibling_client(client)
    await log_in_new_admin(admin)
    listing = await admin.get("/admin/billing/outbox")
    assert listing.status_code == 200
    assert "inbox@example.com" in listing.text
    assert "payment_failed" in listing.text
    assert "SMTP_URL is not set" in listing.text
    assert "Your payment of $9 failed" in listing.text
    message_id = await session.scalar(select(EmailOutboxMessage.id))
    detail = await admin.get(f"/admin/billing/outbox/{message_id}")
    assert detail.status_code == 200
    assert "We could not charge $9" in detail.text  # the text body
    # The HTML body, in a sandboxed frame of its own URL (app.web.security_headers).
    assert f'src="/admin/billing/outbox/{message_id}/html"' in detail.text
    html_body = await admin.get(f"/admin/billing/outbox/{message_id}/html")
    assert html_body.text.lower().startswith("<!doctype html>")
    assert "$9" in html_body.text
    assert (await admin.get("/admin/billing/outbox/999999")).status_code == 404
    assert (await admin.get("/admin/billing/outbox?status=sent")).status_code == 200
