"""`/api/v1/customers/{external_id}/members` and portal links that name a member."""

from __future__ import annotations

from urllib.parse import quote, urlparse

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from tests.conftest import sibling_client


async def _customer(api: AsyncTestClient[Litestar], external_id: str) -> None:
    response = await api.post(
        "/api/v1/customers",
        json={"customer": {"external_id": external_id, "email": "billing@acme.test"}},
    )
    assert response.status_code == 200, response.text


async def test_attach_list_change_and_remove_members(
    api: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    await _customer(api, "acme")
    base = "/api/v1/customers/acme/members"
    assert (await api.get(base)).json() == {"members": [], "external_customer_id": "acme"}

    created = await api.post(base, json={"email": "Boss@Acme.test", "role": "owner", "name": "B"})
    assert created.status_code == 201, created.text
    assert created.json()["member"]["email"] == "boss@acme.test"
    assert created.json()["member"]["role"] == "owner"
    user = await session.scalar(select(User).where(User.email == "boss@acme.test"))
    assert user is not None and user.password_hash is None  # password-less: portal links

    dev = await api.post(base, json={"email": "dev@acme.test"})
    assert dev.status_code == 201 and dev.json()["member"]["role"] == "member"
    changed = await api.post(base, json={"email": "dev@acme.test", "role": "billing_admin"})
    assert changed.status_code == 200 and changed.json()["member"]["role"] == "billing_admin"

    listed = (await api.get(base)).json()["members"]
    assert [(m["email"], m["role"]) for m in listed] == [
        ("boss@acme.test", "owner"),
        ("dev@acme.test", "billing_admin"),
    ]
    # The last owner stays.
    last = await api.delete(f"{base}/{quote('boss@acme.test')}")
    assert last.status_code == 409 and last.json()["error"] == "last_owner"
    demote = await api.post(base, json={"email": "boss@acme.test", "role": "member"})
    assert demote.status_code == 409 and demote.json()["error"] == "last_owner"
    removed = await api.delete(f"{base}/dev%40acme.test")
    assert removed.status_code == 200 and removed.json()["member"]["email"] == "dev@acme.test"
    missing = await api.delete(f"{base}/dev%40acme.test")
    assert missing.status_code == 404 and missing.json()["error"] == "member_not_found"


async def test_bad_input_and_unknown_customer(api: AsyncTestClient[Litestar], client) -> None:  # type: ignore[no-untyped-def]
    await _customer(api, "acme")
    base = "/api/v1/customers/acme/members"
    bad_role = await api.post(base, json={"email": "x@acme.test", "role": "boss"})
    assert bad_role.status_code == 422 and bad_role.json()["field"] == "role"
    bad_email = await api.post(base, json={"email": "not an address"})
    assert bad_email.status_code == 422 and bad_email.json()["field"] == "email"
    unknown = await api.get("/api/v1/customers/nobody/members")
    assert unknown.status_code == 404 and unknown.json()["error"] == "customer_not_found"
    assert (await client.get(base)).status_code == 401  # no key


async def test_portal_link_logs_in_the_named_member(
    api: AsyncTestClient[Litestar], client: AsyncTestClient[Litestar]
) -> None:
    await _customer(api, "acme")
    base = "/api/v1/customers/acme/members"
    await api.post(base, json={"email": "boss@acme.test", "role": "owner"})
    await api.post(base, json={"email": "dev@acme.test", "role": "member"})
    response = await api.get("/api/v1/customers/acme/portal_url?member=dev%40acme.test")
    assert response.status_code == 200, response.text
    browser = sibling_client(client)
    entered = await browser.post(
        urlparse(response.json()["customer"]["portal_url"]).path, follow_redirects=False
    )
    assert entered.status_code == 303
    page = await browser.get("/billing")
    assert 'data-testid="nav-user">dev@acme.test<' in page.text
    assert (await browser.get("/billing/payment-methods")).status_code == 403  # a member

    # Without `member`: the first owner.
    plain = await api.get("/api/v1/customers/acme/portal_url")
    owner_browser = sibling_client(client)
    await owner_browser.post(urlparse(plain.json()["customer"]["portal_url"]).path)
    assert 'nav-user">boss@acme.test<' in (await owner_browser.get("/billing")).text
    assert (await owner_browser.get("/billing/payment-methods")).status_code == 200

    stranger = await api.get("/api/v1/customers/acme/portal_url?member=eve%40else.test")
    assert stranger.status_code == 404 and stranger.json()["error"] == "member_not_found"


async def test_members_endpoints_are_in_the_openapi_document(client) -> None:  # type: ignore[no-untyped-def]
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    members = paths["/api/v1/customers/{external_id}/members"]
    assert {"get", "post"} <= set(members)
    assert "delete" in paths["/api/v1/customers/{external_id}/members/{email}"]
    portal = paths["/api/v1/customers/{external_id}/portal_url"]["get"]
    assert any(p["name"] == "member" for p in portal["parameters"])
