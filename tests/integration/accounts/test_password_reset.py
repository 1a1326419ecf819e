"""Password reset by email: same answer for any email, single use, one hour, throttled, and
every login of the user ends."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import redis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.accounts.flows import RESET_SENT
from app.accounts.throttle import LINKS_PER_ACCOUNT
from app.lib import clock
from tests.conftest import sibling_client, signup
from tests.integration.accounts.helpers import (
    NEW_PASSWORD,
    PASSWORD,
    emails,
    link_in_email,
    log_in_with,
    logged_in,
    post,
)
from tests.integration.accounts.test_login_throttle import REDIS_URL, browser, build, opened

_CSRF = re.compile(r'name="_csrf_token" value="[^"]+"')


async def forgot(client: AsyncTestClient[Litestar], email: str):
    return await post(client, "/forgot", {"email": email}, csrf_from="/forgot")


async def reset_link(client: AsyncTestClient[Litestar], email: str) -> str:
    response = await forgot(client, email)
    assert response.status_code == 200, response.text
    return await link_in_email(client, email, "password_reset")


async def test_the_login_page_links_to_the_forgotten_password_page(client):
    assert 'href="/forgot"' in (await client.get("/login")).text
    assert (await client.get("/forgot")).status_code == 200


async def test_known_and_unknown_emails_get_the_same_answer(client):
    await signup(client, "ada@example.com")
    known = await forgot(client, "ADA@example.com ")
    unknown = await forgot(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert RESET_SENT in known.text

    # The very same page, bar the form's CSRF token and the echoed address.
    def normal(html: str) -> str:
        return (
            _CSRF.sub("", html).replace("ADA@example.com ", "X").replace("nobody@example.com", "X")
        )

    assert normal(known.text) == normal(unknown.text)
    assert len(await emails(client, "ada@example.com", "password_reset")) == 1
    assert await emails(client, "nobody@example.com") == []


async def test_the_link_sets_a_new_password_once(client):
    await signup(client, "ada@example.com")
    link = await reset_link(client, "ada@example.com")
    assert link.startswith("/reset/")
    page = await client.get(link)
    assert page.status_code == 200 and 'action="' + link + '"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"

    weak = await post(client, link, {"password": "password"}, csrf_from=link)
    assert weak.status_code == 422 and "most common" in weak.text  # the link still works

    done = await post(client, link, {"password": NEW_PASSWORD}, csrf_from=link)
    assert done.status_code == 303
    assert done.headers["location"] == "/login?email=ada%40example.com"
    assert not await logged_in(client)
    assert (await log_in_with(client, "ada@example.com", PASSWORD)).status_code == 400
    assert (await log_in_with(client, "ada@example.com", NEW_PASSWORD)).status_code == 303

    again = await client.get(link)
    assert again.status_code == 410 and "already used" in again.text
    reused = await post(client, link, {"password": "another new passphrase"}, csrf_from="/forgot")
    assert reused.status_code == 410
    assert (await log_in_with(client, "ada@example.com", NEW_PASSWORD)).status_code == 303


async def test_the_link_expires_after_an_hour(client, monkeypatch):
    await signup(client, "ada@example.com")
    link = await reset_link(client, "ada@example.com")
    later = clock.utcnow() + timedelta(hours=1, seconds=1)
    monkeypatch.setattr("app.accounts.tokens.utcnow", lambda: later)
    page = await client.get(link)
    assert page.status_code == 410 and "expired" in page.text
    response = await post(client, link, {"password": NEW_PASSWORD}, csrf_from="/forgot")
    assert response.status_code == 410
    monkeypatch.undo()
    assert (await log_in_with(client, "ada@example.com", PASSWORD)).status_code == 303


async def test_a_newer_link_replaces_the_older_one_and_nonsense_is_refused(client):
    await signup(client, "ada@example.com")
    first = await reset_link(client, "ada@example.com")
    second = await reset_link(client, "ada@example.com")
    assert first != second
    assert (await client.get(first)).status_code == 410
    assert (await client.get(second)).status_code == 200
    assert (await client.get("/reset/not-a-token")).status_code == 404
    assert (await client.get("/reset/" + "x" * 500)).status_code == 404


async def test_a_verification_link_cannot_reset_a_password(client):
    await signup(client, "ada@example.com")
    verify = await link_in_email(client, "ada@example.com", "verify_email")
    token = verify.rsplit("/", 1)[1]
    assert (await client.get(f"/reset/{token}")).status_code == 404


async def test_requests_are_throttled_per_email_and_per_address(client):
    await signup(client, "ada@example.com")
    for _ in range(LINKS_PER_ACCOUNT):
        assert (await forgot(client, "ada@example.com")).status_code == 200
    refused = await forgot(client, "ada@example.com")
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert len(await emails(client, "ada@example.com", "password_reset")) == LINKS_PER_ACCOUNT
    # An unknown email is counted the same: its answer tells nothing either.
    for _ in range(LINKS_PER_ACCOUNT):
        assert (await forgot(client, "nobody@example.com")).status_code == 200
    assert (await forgot(client, "nobody@example.com")).status_code == 429
    # One address asking for many accounts.
    statuses = {(await forgot(client, f"n{i}@example.com")).status_code for i in range(20)}
    assert 429 in statuses


async def test_using_the_link_logs_out_every_session(client):
    await signup(client, "ada@example.com")
    async with sibling_client(client) as laptop:
        assert (await log_in_with(laptop, "ada@example.com", PASSWORD)).status_code == 303
        assert await logged_in(laptop) and await logged_in(client)
        link = await reset_link(client, "ada@example.com")
        assert (
            await post(laptop, link, {"password": NEW_PASSWORD}, csrf_from=link)
        ).status_code == 303
        assert not await logged_in(client)
        assert not await logged_in(laptop)


async def test_reset_requests_are_counted_across_processes_through_redis(
    tmp_path, database_url, catalog, engine
) -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).flushdb()
    except redis.RedisError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: shared reset limits are untested")
    first = build(tmp_path, database_url, catalog, redis_url=REDIS_URL)
    second = build(tmp_path, database_url, catalog, redis_url=REDIS_URL)
    async with opened(first) as one_app, opened(second) as two_app:
        # Two browsers at different addresses, each on its own process: the email's count.
        one, two = browser(one_app, "198.51.100.1"), browser(two_app, "198.51.100.2")
        for n in range(LINKS_PER_ACCOUNT):
            assert (await forgot(one if n % 2 else two, "ada@example.com")).status_code == 200
        assert (await forgot(one, "ada@example.com")).status_code == 429
        assert (await forgot(two, "ada@example.com")).status_code == 429
