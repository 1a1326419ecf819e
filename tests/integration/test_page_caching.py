"""Billing and admin pages show live, private data: the browser must not keep them (Back after
buying credits showed the old balance). Static files, the API and /health are unaffected."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import sibling_client
from tests.factories import log_in_new_admin, log_in_new_user

HX = {"HX-Request": "true"}


async def test_billing_and_admin_pages_are_sent_no_store(
    client: AsyncTestClient[Litestar],
) -> None:
    await log_in_new_user(client)
    for path in ("/billing", "/billing/credits", "/billing/upgrade", "/billing/invoices"):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert response.headers.get("cache-control") == "no-store", path
        assert response.headers.get("vary") == "HX-Request", path
    fragment = await client.get("/billing/upgrade?interval=year", headers=HX)
    assert "<html" not in fragment.text
    assert fragment.headers.get("cache-control") == "no-store"

    admin = sibling_client(client)
    await log_in_new_admin(admin)
    for path in ("/admin/billing", "/admin/billing/customers", "/admin/billing/events"):
        response = await admin.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert response.headers.get("cache-control") == "no-store", path


async def test_static_files_api_and_health_keep_their_caching(
    client: AsyncTestClient[Litestar],
) -> None:
    static = await client.get("/static/app.css")
    assert static.status_code == 200
    assert "no-store" not in static.headers.get("cache-control", "")
    health = await client.get("/health")
    assert health.status_code == 200
    assert "cache-control" not in health.headers
    api = await client.get("/api/v1/customers/nobody")  # no key: a JSON 401
    assert api.status_code == 401
    assert "cache-control" not in api.headers
