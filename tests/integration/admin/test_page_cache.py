"""The admin's overview and customer search through the page cache (app/billing/page_cache.py,
`ADMIN_PATHS`): loaded again with nothing changed they run no statement, and a cached page is
never another session's, never a revoked login's or a demoted admin's, and never hides a
write; usage leaves them cached (neither shows usage: the overview's figures are a snapshot
of their own, served only while that snapshot is the current one)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User, UserSession
from app.billing.page_cache import ADMIN_PATHS
from app.catalog.models import Catalog
from app.db.page_versions import VERSIONS
from app.lib.clock import utcnow
from tests.conftest import sibling_client
from tests.factories import log_in, make_admin, make_user, unique_email
from tests.integration.admin.conftest import Admin, make_customer
from tests.integration.billing.test_page_cache import cached, load, statements

_NAV_USER = re.compile(r'data-testid="nav-user">([^<]+)<')
PAGES = ["/admin/billing", "/admin/billing/customers", "/admin/billing/customers?q=cache"]


@pytest.fixture
async def other_admin(
    admin: Admin, session: AsyncSession, catalog: Catalog
) -> AsyncIterator[Admin]:
    user = await make_admin(session, catalog)
    client = sibling_client(admin.client)
    await log_in(client, user.id)
    yield Admin(client, user.email)


def test_the_admin_pages_are_cached_paths() -> None:
    assert {path.partition("?")[0] for path in PAGES} <= ADMIN_PATHS


@pytest.mark.parametrize("path", PAGES)
async def test_an_admin_page_loaded_again_runs_no_statement(admin: Admin, path: str) -> None:
    first = await load(admin, path)
    assert await cached(admin, path) == first


def signed_in_as(html: str) -> str:
    found = _NAV_USER.search(html)
    assert found, "no signed-in user in the navigation"
    return found.group(1)


async def test_one_admins_page_is_never_anothers(admin: Admin, other_admin: Admin) -> None:
    for path in PAGES:
        mine = await cached(admin, path)
        theirs = await load(other_admin, path)
        assert signed_in_as(mine) == admin.email
        assert signed_in_as(theirs) == other_admin.email
        assert signed_in_as(await cached(other_admin, path)) == other_admin.email
        assert signed_in_as(await load(admin, path)) == admin.email


async def test_a_customer_never_gets_the_admins_cached_page(
    admin: Admin, session: AsyncSession, catalog: Catalog
) -> None:
    user = await make_user(session, catalog, unique_email(), name="User")
    user_client = sibling_client(admin.client)  # one client per app: see the admin conftest
    await log_in(user_client, user.id)
    for path in PAGES:
        await cached(admin, path)
        for _ in range(3):
            response = await user_client.get(path)
            assert response.status_code == 403
            assert admin.email not in _NAV_USER.findall(response.text)
    # Nor a visitor without a session, nor one with the admin's session id but no CSRF cookie
    # (a cookie header the admin's browser never sent: rendered by the app, which refuses it).
    anonymous = sibling_client(admin.client)
    response = await anonymous.get("/admin/billing", follow_redirects=False)
    assert response.status_code in (302, 303, 401) and admin.email not in response.text


async def test_a_revoked_login_gets_no_cached_page(admin: Admin, session: AsyncSession) -> None:
    """ "Log out other sessions" (or an admin ending a login) marks the login's row: a write,
    so the next load runs `retrieve_user` again, which refuses it."""
    for path in PAGES:
        await cached(admin, path)
    user_id = await session.scalar(select(User.id).where(User.email == admin.email))
    await session.execute(
        update(UserSession).where(UserSession.user_id == user_id).values(revoked_at=utcnow())
    )
    await session.commit()
    for path in PAGES:
        response = await admin.client.get(path, follow_redirects=False)
        assert response.status_code != 200 and admin.email not in response.text, path


async def test_an_admin_demoted_gets_no_cached_page(admin: Admin, session: AsyncSession) -> None:
    for path in PAGES:
        await cached(admin, path)
    await session.execute(update(User).where(User.email == admin.email).values(is_admin=False))
    await session.commit()
    for path in PAGES:
        response = await admin.client.get(path)
        assert response.status_code == 403, path


async def test_a_new_customer_shows_at_once_usage_leaves_the_search_cached(
    admin: Admin, session: AsyncSession, catalog: Catalog
) -> None:
    path = "/admin/billing/customers?q=cache"
    assert "cache-new@example.com" not in await cached(admin, path)
    VERSIONS.usage_changed(None)  # anyone's usage, as the usage writer announces it
    VERSIONS.usage_changed("someone")
    with statements() as ran:
        await load(admin, path)
    assert ran == []
    await make_customer(session, catalog, "cache-new@example.com")
    assert "cache-new@example.com" in await load(admin, path)


async def test_the_overview_is_served_only_while_its_figures_are_current(
    admin: Admin, app: Litestar
) -> None:
    await cached(admin, "/admin/billing")
    VERSIONS.usage_changed(None)  # usage: the figures take it in when computed again
    with statements() as ran:
        await load(admin, "/admin/billing")
    assert ran == []
    app.state["admin_overview"]._expires = 0.0  # the figures' window has passed
    with statements() as ran:
        await load(admin, "/admin/billing")
    assert ran, "the figures computed again"
    await cached(admin, "/admin/billing")
