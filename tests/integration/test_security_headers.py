"""Every kind of browser page carries the security headers, with these exact values; HSTS only
when PUBLIC_URL is https; the API keeps its lean answers."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.apikeys.service import ApiKeyService
from app.billing.views import BillingPages
from app.catalog.models import Catalog
from app.main import create_app
from app.notifications.models import EmailOutboxMessage
from tests.conftest import sibling_client
from tests.factories import log_in_new_admin, log_in_new_user
from tests.support import make_settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
}
HSTS = "max-age=31536000; includeSubDomains"


def assert_page_headers(response: httpx.Response, *, hsts: bool = False, **overrides: str) -> None:
    expected = {**HEADERS, **{k.replace("_", "-"): v for k, v in overrides.items()}}
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    for name, value in expected.items():
        assert response.headers.get(name) == value, (where, name, response.headers.get(name))
    if hsts:
        assert response.headers.get("strict-transport-security") == HSTS, where
    else:
        assert "strict-transport-security" not in response.headers, where


async def _admin(client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    admin = sibling_client(client)
    await log_in_new_admin(admin)
    return admin


async def test_every_page_kind_carries_the_headers(
    client: AsyncTestClient[Litestar], session: AsyncSession, catalog: Catalog
) -> None:
    for path in ("/login", "/signup", "/no/such/page"):
        assert_page_headers(await client.get(path))
    # Not logged in: the redirect to the login page.
    redirect = await client.get("/billing", follow_redirects=False)
    assert redirect.status_code == 303
    assert_page_headers(redirect)

    await log_in_new_user(client)
    for path in ("/billing", "/billing/upgrade", "/billing/invoices", "/billing/settings"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert_page_headers(response)
    fragment = await client.get("/billing/meters", headers={"HX-Request": "true"})
    assert_page_headers(fragment)
    forbidden = await client.get("/admin/billing")
    assert forbidden.status_code == 403
    assert_page_headers(forbidden)

    admin = await _admin(client)
    for path in ("/admin/billing", "/admin/billing/customers", "/admin/billing/events"):
        response = await admin.get(path)
        assert response.status_code == 200, path
        assert_page_headers(response)
    missing = await admin.get("/admin/billing/customers/nobody-here")
    assert missing.status_code == 404
    assert_page_headers(missing)


async def test_a_500_page_carries_the_headers(
    client: AsyncTestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    await log_in_new_user(client)

    async def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(BillingPages, "account", boom)
    response = await client.get("/billing")
    assert response.status_code == 500
    assert "text/html" in response.headers["content-type"]
    assert_page_headers(response)


async def test_the_portal_link_page_keeps_no_referrer(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    _key, raw = await ApiKeyService(session).create("headers test")
    await session.commit()
    api = sibling_client(client)
    api.headers["Authorization"] = f"Bearer {raw}"
    external_id = f"hdr_{secrets.token_hex(3)}"
    created = await api.post("/api/v1/customers", json={"customer": {"external_id": external_id}})
    assert created.status_code == 200, created.text
    url = (await api.get(f"/api/v1/customers/{external_id}/portal_url")).json()["customer"][
        "portal_url"
    ]
    path = httpx.URL(url).path
    confirm = await client.get(path)
    assert confirm.status_code == 200
    assert_page_headers(confirm, referrer_policy="no-referrer")
    entered = await client.post(path, follow_redirects=False)
    assert entered.status_code == 303
    assert_page_headers(entered, referrer_policy="no-referrer")


async def test_the_email_preview_is_framed_only_by_the_portal(
    client: AsyncTestClient[Litestar], session: AsyncSession, catalog: Catalog
) -> None:
    message = EmailOutboxMessage(
        kind="payment_failed",
        to_address="inbox@example.com",
        subject="Payment failed",
        text_body="text",
        html_body='<p style="color: red">Your payment failed</p>',
        dedupe_key=f"headers-{secrets.token_hex(4)}",
        message_id=f"<{secrets.token_hex(4)}@example.com>",
    )
    session.add(message)
    await session.commit()
    admin = await _admin(client)
    detail = await admin.get(f"/admin/billing/outbox/{message.id}")
    assert_page_headers(detail)
    assert f'src="/admin/billing/outbox/{message.id}/html"' in detail.text
    body = await admin.get(f"/admin/billing/outbox/{message.id}/html")
    assert body.status_code == 200
    assert body.text == '<p style="color: red">Your payment failed</p>'
    assert body.headers["content-security-policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'self'"
    )
    assert body.headers["x-frame-options"] == "SAMEORIGIN"
    assert body.headers["x-content-type-options"] == "nosniff"
    anonymous = await client.get(f"/admin/billing/outbox/{message.id}/html", follow_redirects=False)
    assert anonymous.status_code == 303  # to the login page


async def test_hsts_only_when_public_url_is_https(
    tmp_path: Path, database_url: str, catalog: Catalog, engine: AsyncEngine
) -> None:
    settings = make_settings(tmp_path / "var", database_url, public_url="https://billing.test")
    app = create_app(settings, catalog)
    async with AsyncTestClient(app, base_url="https://billing.test") as client:
        for path in ("/login", "/no/such/page"):
            assert_page_headers(await client.get(path), hsts=True)
        assert_page_headers(await client.get("/billing", follow_redirects=False), hsts=True)


async def test_api_answers_stay_lean(client: AsyncTestClient[Litestar]) -> None:
    for path in ("/api/v1/customers/nobody", "/health"):
        response = await client.get(path)
        assert "content-security-policy" not in response.headers, path
        assert "x-frame-options" not in response.headers, path
