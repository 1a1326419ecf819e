"""Admin fixtures: a logged-in admin client, a logged-in non-admin, and form helpers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import AuditLog
from app.catalog.models import Catalog
from tests.conftest import csrf_token
from tests.factories import log_in, make_admin, make_user, unique_email

BASE_URL = "http://testserver.local"
ADMIN_PASSWORD = "admin password for tests"
_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
_REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


@dataclass
class Admin:
    client: AsyncTestClient[Litestar]
    email: str

    async def confirm_and_post(
        self, confirm_url: str, reason: str | None = "support ticket 42", **params: str
    ):
        """Open the confirm page, then submit its form (hidden fields as rendered) with `reason`."""
        page = await self.client.get(confirm_url, params=params)
        assert page.status_code == 200, page.text
        html = page.text.split('data-testid="confirm-summary"', 1)[1]
        form = dict(_HIDDEN.findall(html))
        action = re.search(r'<form method="post" action="([^"]+)"', html)
        assert action, "no action form on the confirm page"
        if reason is not None:
            form["reason"] = reason
        return await self.client.post(action.group(1), data=form, follow_redirects=False)


async def login(client: AsyncTestClient[Litestar], email: str, password: str) -> None:
    token = await csrf_token(client, "/login")
    response = await client.post(
        "/login",
        data={"email": email, "password": password, "_csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


@pytest.fixture
async def admin(app: Litestar, session: AsyncSession, catalog: Catalog) -> AsyncIterator[Admin]:
    user = await make_admin(session, catalog, password=ADMIN_PASSWORD)
    async with AsyncTestClient(app, base_url=BASE_URL) as client:
        await log_in(client, user.id)
        yield Admin(client, user.email)


@pytest.fixture
async def user_client(
    app: Litestar, session: AsyncSession, catalog: Catalog
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    user = await make_user(session, catalog, unique_email(), name="User")
    async with AsyncTestClient(app, base_url=BASE_URL) as client:
        await log_in(client, user.id)
        yield client


@dataclass(frozen=True)
class CustomerRef:
    id: int
    external_id: str
    email: str


async def make_customer(
    session: AsyncSession, catalog: Catalog, email: str, name: str = "Customer"
) -> CustomerRef:
    """A signed-up user's customer, made by the signup service (no second client on the app:
    closing one would run the app's shutdown under the admin's client)."""
    user = await make_user(session, catalog, email, name=name)
    return CustomerRef(user.customer_id, user.external_id, email)


async def audit_entries(session: AsyncSession, action: str | None = None) -> list[AuditLog]:
    await session.commit()  # a fresh snapshot
    query = select(AuditLog).order_by(AuditLog.id)
    if action:
        query = query.where(AuditLog.action == action)
    return list(await session.scalars(query.execution_options(populate_existing=True)))


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field"
    return match.group(1)


def request_id_of(html: str) -> str:
    match = _REQUEST_ID.search(html)
    assert match, "no request_id field"
    return match.group(1)
