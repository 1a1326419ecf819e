"""Every admin route, GET and POST: anonymous → login, a non-admin → the 403 page, admin → in."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.accounts.guards import requires_admin
from tests.conftest import csrf_token
from tests.integration.admin.conftest import Admin

EXTERNAL_ID = "cust_authz"
ROUTES = [
    ("GET", "/admin/billing"),
    ("GET", "/admin/billing/customers"),
    ("GET", f"/admin/billing/customers/{EXTERNAL_ID}"),
    ("GET", f"/admin/billing/customers/{EXTERNAL_ID}/confirm?action=cancel"),
    ("GET", f"/admin/billing/customers/{EXTERNAL_ID}/view"),
    ("POST", f"/admin/billing/customers/{EXTERNAL_ID}/grant-credits"),
    ("POST", f"/admin/billing/customers/{EXTERNAL_ID}/change-plan"),
    ("POST", f"/admin/billing/customers/{EXTERNAL_ID}/cancel"),
    ("POST", f"/admin/billing/customers/{EXTERNAL_ID}/resume"),
    ("POST", f"/admin/billing/customers/{EXTERNAL_ID}/view"),
    ("GET", "/admin/billing/invoices"),
    ("GET", "/admin/billing/invoices/in_authz"),
    ("GET", "/admin/billing/invoices/in_authz/refund"),
    ("POST", "/admin/billing/invoices/in_authz/refund"),
    ("GET", "/admin/billing/payments/cs_authz"),
    ("GET", "/admin/billing/payments/cs_authz/refund"),
    ("POST", "/admin/billing/payments/cs_authz/refund"),
    ("GET", "/admin/billing/events"),
    ("GET", "/admin/billing/events/evt_authz"),
    ("GET", "/admin/billing/events/evt_authz/confirm"),
    ("POST", "/admin/billing/events/evt_authz/replay"),
    ("GET", "/admin/billing/api-keys"),
    ("POST", "/admin/billing/api-keys"),
    ("GET", "/admin/billing/api-keys/1/confirm"),
    ("POST", "/admin/billing/api-keys/1/revoke"),
    ("GET", "/admin/billing/audit"),
]


def test_every_admin_route_is_listed(app: Litestar) -> None:
    """A new admin route must be added to ROUTES (so its authorization is tested)."""
    listed = {path.split("?")[0].replace(EXTERNAL_ID, "{external_id:str}") for _, path in ROUTES}
    listed = {
        p.replace("evt_authz", "{stripe_event_id:str}")
        .replace("/1/", "/{key_id:int}/")
        .replace("in_authz", "{object_id:str}")
        .replace("cs_authz", "{object_id:str}")
        for p in listed
    }
    # The customer actions share one route; each is still requested above.
    for slug in ("grant-credits", "change-plan", "cancel", "resume"):
        listed.discard(f"/admin/billing/customers/{{external_id:str}}/{slug}")
    listed.add("/admin/billing/customers/{external_id:str}/{action:str}")
    actual = {
        route.path
        for route in app.routes
        for handler in route.route_handlers
        if handler.fn.__qualname__.startswith("AdminController.")
    }
    assert actual == listed


def route_path(handler: object) -> str:
    return str(getattr(handler, "paths", handler))


def test_every_route_under_admin_requires_the_admin_role(app: Litestar) -> None:
    """Also routes other packages add under /admin (e.g. the email outbox)."""
    handlers = [
        handler
        for route in app.routes
        if route.path.startswith("/admin")
        for handler in route.route_handlers
    ]
    assert handlers
    for handler in handlers:
        guards = [getattr(g, "func", g) for g in handler.resolve_guards()]
        assert requires_admin in guards, route_path(handler)


async def _send(client: AsyncTestClient[Litestar], method: str, path: str, token: str):
    if method == "GET":
        return await client.get(path, follow_redirects=False)
    return await client.post(
        path, data={"_csrf_token": token, "reason": "x", "request_id": "r1"}, follow_redirects=False
    )


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_anonymous_is_sent_to_login(
    client: AsyncTestClient[Litestar], method: str, path: str
) -> None:
    token = await csrf_token(client, "/login")
    response = await _send(client, method, path, token)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_user_who_is_not_admin_gets_the_403_page(
    user_client: AsyncTestClient[Litestar], method: str, path: str
) -> None:
    token = await csrf_token(user_client, "/billing")
    response = await _send(user_client, method, path, token)
    assert response.status_code == 403
    assert 'data-testid="error-403"' in response.text


async def test_an_admin_gets_in(admin: Admin) -> None:
    for method, path in ROUTES:
        if method == "GET" and "{" not in path and EXTERNAL_ID not in path and "authz" not in path:
            if "/confirm" in path:
                continue
            response = await admin.client.get(path)
            assert response.status_code == 200, (path, response.text[:500])


async def test_a_post_without_csrf_token_is_refused(admin: Admin) -> None:
    response = await admin.client.post(
        "/admin/billing/api-keys", data={"name": "k", "reason": "r", "request_id": "abc"}
    )
    assert response.status_code == 403
