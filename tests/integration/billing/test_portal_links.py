"""`GET /api/v1/customers/{external_id}/portal_url` and `GET /portal/{token}`."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlparse

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.accounts.service import AccountService
from app.billing.portal_links import sign
from app.catalog.models import Catalog
from app.config import Settings
from app.customers.models import Customer
from app.lib.clock import utcnow
from tests.conftest import sibling_client
from tests.integration.billing.conftest import Member, record


async def create_customer(api: AsyncTestClient[Litestar], external_id: str, **fields) -> None:
    body = {"customer": {"external_id": external_id, **fields}}
    response = await api.post("/api/v1/customers", json=body)
    assert response.status_code == 200, response.text


async def portal_path(api: AsyncTestClient[Litestar], external_id: str) -> str:
    response = await api.get(f"/api/v1/customers/{external_id}/portal_url")
    assert response.status_code == 200, response.text
    url = response.json()["customer"]["portal_url"]
    assert url.startswith("http://testserver.local/portal/")
    return urlparse(url).path


async def test_portal_url_wire_format_and_auth(api, client) -> None:
    await create_customer(api, "acme_1", email="owner@acme.test", name="Acme")
    response = await api.get("/api/v1/customers/acme_1/portal_url")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["customer"] and list(body["customer"]) == ["portal_url"]
    assert response.headers["cache-control"] == "no-store"
    other = await api.get("/api/v1/customers/acme_1/portal_url")
    assert other.json() != body  # every call mints a fresh link

    anonymous = await client.get("/api/v1/customers/acme_1/portal_url")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
    wrong = await client.get(
        "/api/v1/customers/acme_1/portal_url", headers={"Authorization": "Bearer bp_live_nope"}
    )
    assert wrong.status_code == 401
    missing = await api.get("/api/v1/customers/nobody/portal_url")
    assert missing.status_code == 404 and missing.json()["error"] == "customer_not_found"


async def test_link_logs_an_api_customer_in_once(api, client, session: AsyncSession) -> None:
    await create_customer(api, "acme_2", email="billing@acme.test", name="Acme Two", plan="pro")
    await record(api, "acme_2", count=3)
    path = await portal_path(api, "acme_2")

    browser = sibling_client(client)
    # Opening the link (or a preview fetching it) shows a page that posts it back, and leaves
    # it unused; only the post logs in.
    for _ in range(2):
        opened = await browser.get(path, follow_redirects=False)
        assert opened.status_code == 200 and 'data-testid="portal-enter"' in opened.text
        assert f'method="post" action="{path}"' in opened.text
        assert "/static/portal-enter.js" in opened.text
        assert opened.headers["referrer-policy"] == "no-referrer"
        assert opened.headers["cache-control"] == "no-store"
    assert (await browser.get("/billing", follow_redirects=False)).status_code == 303  # not in
    response = await browser.post(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/billing"
    assert response.headers["referrer-policy"] == "no-referrer"
    page = await browser.get("/billing")
    assert page.status_code == 200
    assert re.search(r'data-testid="current-plan">\s*<strong class="plan-name">Pro', page.text)
    assert "<strong>3</strong> / 1,000" in page.text
    assert "billing@acme.test" in page.text  # the nav shows who is logged in

    customer = await session.scalar(select(Customer).where(Customer.external_id == "acme_2"))
    assert customer is not None and customer.user_id is not None
    user = await session.get(User, customer.user_id)
    assert user is not None and user.password_hash is None and not user.is_admin
    await session.rollback()

    replayer = sibling_client(client)
    for again in (
        await replayer.get(path, follow_redirects=False),
        await replayer.post(path, follow_redirects=False),
    ):
        assert again.status_code == 403
        assert "already used" in again.text
    assert (await replayer.get("/billing", follow_redirects=False)).status_code == 303  # not in

    # A second link reuses the linked login instead of creating another user.
    second = await sibling_client(client).post(
        await portal_path(api, "acme_2"), follow_redirects=False
    )
    assert second.status_code == 303
    users = list(await session.scalars(select(User).where(User.email == "billing@acme.test")))
    assert len(users) == 1


async def test_link_for_a_signed_up_user_logs_in_as_that_user(api, client, member: Member) -> None:
    browser = sibling_client(client)
    response = await browser.post(await portal_path(api, member.external_id))
    assert response.status_code == 200
    assert member.email in response.text


async def test_email_of_another_user_is_not_reused(
    api, client, member: Member, session: AsyncSession
) -> None:
    await create_customer(api, "acme_3", email=member.email)
    browser = sibling_client(client)
    page = await browser.post(await portal_path(api, "acme_3"))
    assert page.status_code == 200
    assert member.email not in page.text
    assert "@portal.invalid" in page.text
    await session.rollback()
    customer = await session.scalar(select(Customer).where(Customer.external_id == "acme_3"))
    assert customer is not None
    assert customer.user_id is not None
    member_customer = await session.get(Customer, member.customer_id)
    assert member_customer is not None and member_customer.user_id != customer.user_id


async def test_expired_and_forged_links_are_refused(
    api, client, settings: Settings, session: AsyncSession
) -> None:
    await create_customer(api, "acme_4")
    customer = await session.scalar(select(Customer).where(Customer.external_id == "acme_4"))
    assert customer is not None
    public_id = customer.public_id
    await session.rollback()

    expired = sign(settings.secret_key, public_id, utcnow() - timedelta(minutes=6))
    response = await client.get(f"/portal/{expired}", follow_redirects=False)
    assert response.status_code == 403 and "expired" in response.text

    forged = sign("not-the-secret-key-" + "y" * 32, public_id, utcnow())
    response = await client.get(f"/portal/{forged}", follow_redirects=False)
    assert response.status_code == 403 and "not valid" in response.text

    genuine = urlparse(await portal_path(api, "acme_4")).path.rsplit("/", 1)[1]
    payload, mac = genuine.split(".")
    for token in (
        f"{payload}.{mac[:-2]}AA",
        f"{payload[:-2]}xx.{mac}",
        "garbage",
        "a.b.c",
        "x" * 600,
    ):
        for response in (
            await client.get(f"/portal/{token}", follow_redirects=False),
            await client.post(f"/portal/{token}", follow_redirects=False),
        ):
            assert response.status_code == 403, token
            assert "<html" in response.text  # a page for the browser, not JSON

    fresh = await client.post(f"/portal/{genuine}", follow_redirects=False)
    assert fresh.status_code == 303  # the tampering attempts did not use the real link up


async def test_no_portal_link_into_an_admin_account(
    api, client, session: AsyncSession, catalog: Catalog
) -> None:
    admin, _ = await AccountService(session, catalog).ensure_admin(
        "boss@example.com", "pw-12345678"
    )
    customer = await session.scalar(select(Customer).where(Customer.user_id == admin.id))
    assert customer is not None
    response = await api.get(f"/api/v1/customers/{customer.external_id}/portal_url")
    assert response.status_code == 403
    forged_by_key_holder = sign(
        client.app.state["settings"].secret_key, customer.public_id, utcnow()
    )
    for response in (
        await client.get(f"/portal/{forged_by_key_holder}", follow_redirects=False),
        await client.post(f"/portal/{forged_by_key_holder}", follow_redirects=False),
    ):
        assert response.status_code == 403
