"""The list of logins on /account, logging one out or all others, and a password change that
keeps only this login (under a new session id)."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.accounts.models import UserSession
from app.db.page_versions import VERSIONS
from tests.conftest import sibling_client, signup
from tests.factories import database_session
from tests.integration.accounts.helpers import (
    NEW_PASSWORD,
    PASSWORD,
    log_in_with,
    logged_in,
    post,
)

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
_REVOKE = re.compile(r'action="/account/sessions/(\d+)/revoke"')


async def rows(client: AsyncTestClient[Litestar]) -> list[UserSession]:
    async with database_session(client.app.state["settings"].database_url) as session:
        return list(await session.scalars(select(UserSession).order_by(UserSession.id)))


def session_cookie(client: AsyncTestClient[Litestar]) -> str | None:
    return client.cookies.get("session")


async def test_the_account_page_lists_each_login_with_its_browser(client):
    client.headers["user-agent"] = FIREFOX
    await signup(client, "ada@example.com")
    async with sibling_client(client) as phone:
        phone.headers["user-agent"] = IPHONE
        assert (await log_in_with(phone, "ada@example.com", PASSWORD)).status_code == 303
        page = await client.get("/account")
        assert page.status_code == 200
        assert "Firefox on Linux" in page.text and "Safari on iOS" in page.text
        assert page.text.count('data-testid="session-row"') == 2
        assert page.text.count('data-current="true"') == 1
        assert 'href="/account"' in (await client.get("/billing")).text
        assert 'href="/account"' in (await client.get("/billing/settings")).text


async def test_log_out_one_session_from_another(client):
    await signup(client, "ada@example.com")
    async with sibling_client(client) as laptop:
        assert (await log_in_with(laptop, "ada@example.com", PASSWORD)).status_code == 303
        laptop_row = (await rows(client))[-1]
        response = await post(
            client, f"/account/sessions/{laptop_row.id}/revoke", {}, csrf_from="/account"
        )
        assert response.status_code == 303
        assert not await logged_in(laptop)
        assert await logged_in(client)
        page = (await client.get("/account")).text
        assert page.count('data-testid="session-row"') == 1


async def test_a_session_of_another_user_cannot_be_logged_out(client):
    await signup(client, "ada@example.com")
    async with sibling_client(client) as other:
        await signup(other, "bob@example.com")
        bob_row = (await rows(client))[-1]
        await post(client, f"/account/sessions/{bob_row.id}/revoke", {}, csrf_from="/account")
        assert await logged_in(other)


async def test_log_out_everywhere_else(client):
    await signup(client, "ada@example.com")
    async with sibling_client(client) as other:
        cookies = []
        for _ in range(2):  # two more browsers
            other.cookies.clear()
            assert (await log_in_with(other, "ada@example.com", PASSWORD)).status_code == 303
            cookies.append(session_cookie(other))
        response = await post(client, "/account/sessions/revoke-others", {}, csrf_from="/account")
        assert response.status_code == 303
        for cookie in cookies:
            other.cookies.clear()
            other.cookies.set("session", cookie or "")
            assert not await logged_in(other)
        assert await logged_in(client)


async def test_logout_ends_the_login_row(client):
    await signup(client, "ada@example.com")
    await post(client, "/logout", {}, csrf_from="/billing")
    assert all(row.revoked_at is not None for row in await rows(client))


async def test_a_session_without_its_login_row_is_refused(client):
    await signup(client, "ada@example.com")
    async with database_session(client.app.state["settings"].database_url) as session:
        for row in await session.scalars(select(UserSession)):
            await session.delete(row)
        await session.commit()
    assert not await logged_in(client)


async def test_changing_the_password_logs_out_the_others_and_renews_this_session(client):
    await signup(client, "ada@example.com")
    async with sibling_client(client) as laptop:
        assert (await log_in_with(laptop, "ada@example.com", PASSWORD)).status_code == 303
        before = session_cookie(client)

        wrong = await post(
            client,
            "/account/password",
            {"current_password": "not it", "new_password": NEW_PASSWORD},
            csrf_from="/account",
        )
        assert wrong.status_code == 422 and "current password is not right" in wrong.text
        assert await logged_in(laptop)

        weak = await post(
            client,
            "/account/password",
            {"current_password": PASSWORD, "new_password": "12345678"},
            csrf_from="/account",
        )
        assert weak.status_code == 422 and "most common" in weak.text

        done = await post(
            client,
            "/account/password",
            {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            csrf_from="/account",
        )
        assert done.status_code == 303
        assert session_cookie(client) not in (None, before)
        assert await logged_in(client)
        assert not await logged_in(laptop)
        assert (await log_in_with(laptop, "ada@example.com", PASSWORD)).status_code == 400
        assert (await log_in_with(laptop, "ada@example.com", NEW_PASSWORD)).status_code == 303


async def test_wrong_current_passwords_are_throttled_like_logins(client, settings):
    await signup(client, "ada@example.com")
    statuses = []
    for _ in range(settings.login_rate_limit + 1):
        response = await post(
            client,
            "/account/password",
            {"current_password": "guess", "new_password": NEW_PASSWORD},
            csrf_from="/account",
        )
        statuses.append(response.status_code)
    assert statuses[-1] == 429 and set(statuses[:-1]) == {422}
    assert "Too many attempts" in response.text and response.headers["retry-after"]


async def test_last_seen_is_written_at_most_once_a_minute(client, monkeypatch):
    from datetime import timedelta

    from app.lib import clock

    await signup(client, "ada@example.com")
    first = (await rows(client))[0].last_seen_at
    await client.get("/billing")
    assert (await rows(client))[0].last_seen_at == first
    later = clock.utcnow() + timedelta(minutes=2)
    monkeypatch.setattr("app.accounts.auth.utcnow", lambda: later)
    pages = VERSIONS.data
    await client.get("/account")
    assert (await rows(client))[0].last_seen_at == later
    # Shown on /account only (never cached): the write ends no cached page.
    assert VERSIONS.data == pages
