"""Session ids are issued by the server and replaced at every login (file store and Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest
import redis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.apikeys.service import ApiKeyService
from app.main import create_app
from tests.conftest import csrf_token, sibling_client, signup
from tests.integration.billing.test_portal_links import create_customer
from tests.support import make_settings

PLANTED = "a" * 64
PASSWORD = "correct horse battery"
REDIS_URL = "redis://127.0.0.1:6379/3"


def _redis_reachable() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(params=["file", "redis"])
async def client(
    request, tmp_path, database_url, catalog, engine
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    overrides = {}
    if request.param == "redis":
        if not _redis_reachable():
            pytest.skip(f"Redis not reachable at {REDIS_URL}: the Redis session store is untested")
        redis.Redis.from_url(REDIS_URL).flushdb()  # this suite's own database index
        overrides["redis_url"] = REDIS_URL
    app = create_app(
        make_settings(tmp_path / f"var-{uuid.uuid4().hex}", database_url, **overrides), catalog
    )
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        yield client


def session_cookie(response) -> str | None:
    for name, value in response.headers.multi_items():
        if name == "set-cookie" and value.startswith("session="):
            return value.split(";", 1)[0].removeprefix("session=")
    return None


def carrying(client: AsyncTestClient[Litestar], session_id: str) -> AsyncTestClient[Litestar]:
    other = sibling_client(client)
    other.cookies.set("session", session_id, domain="testserver.local")
    return other


async def login(client, email: str = "ada@example.com", password: str = PASSWORD):
    token = await csrf_token(client)
    return await client.post(
        "/login",
        data={"email": email, "password": password, "_csrf_token": token},
        follow_redirects=False,
    )


async def logged_in(client) -> bool:
    return (await client.get("/billing", follow_redirects=False)).status_code == 200


async def test_a_planted_session_id_is_never_logged_in(client) -> None:
    await signup(client)
    await client.post("/logout", data={"_csrf_token": await csrf_token(client, "/billing")})

    victim = carrying(client, PLANTED)
    page = await victim.get("/login")
    assert session_cookie(page) in (None, "null")  # the made-up id is not taken up
    response = await login(victim)
    assert response.status_code == 303
    issued = session_cookie(response)
    assert issued and issued not in (PLANTED, "null") and len(issued) == 64

    attacker = carrying(client, PLANTED)
    assert not await logged_in(attacker)
    assert await logged_in(carrying(client, issued))


async def test_every_login_replaces_the_id_and_deletes_the_old_one(client) -> None:
    await signup(client)
    first = client.cookies.get("session")
    assert first and await logged_in(carrying(client, first))

    response = await login(client)
    second = session_cookie(response)
    assert second and second != first
    assert not await logged_in(carrying(client, first))
    assert await logged_in(carrying(client, second))


async def test_signup_issues_a_new_id(client) -> None:
    anonymous = carrying(client, PLANTED)
    token = await csrf_token(anonymous, "/signup")
    response = await anonymous.post(
        "/signup",
        data={"email": "grace@example.com", "password": PASSWORD, "_csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert session_cookie(response) not in (None, PLANTED)
    assert not await logged_in(carrying(client, PLANTED))


async def test_logout_deletes_the_session(client) -> None:
    await signup(client)
    before = client.cookies.get("session")
    token = await csrf_token(client, "/billing")
    response = await client.post("/logout", data={"_csrf_token": token}, follow_redirects=False)
    after = session_cookie(response)
    assert after and after != before
    assert not await logged_in(carrying(client, before))
    assert "You are logged out." in (await client.get("/login")).text


async def test_the_portal_link_login_issues_a_new_id(client, session) -> None:
    _key, raw = await ApiKeyService(session).create("fixation test")
    api = sibling_client(client)
    api.headers["Authorization"] = f"Bearer {raw}"
    await create_customer(api, "acme_fix", email="owner@acme.test")
    response = await api.get("/api/v1/customers/acme_fix/portal_url")
    path = urlparse(response.json()["customer"]["portal_url"]).path

    browser = carrying(client, PLANTED)
    entered = await browser.post(path, follow_redirects=False)
    assert entered.status_code == 303
    assert session_cookie(entered) not in (None, PLANTED)
    assert await logged_in(browser)
    assert not await logged_in(carrying(client, PLANTED))


async def test_an_unknown_id_is_no_session(client) -> None:
    stranger = carrying(client, PLANTED)
    response = await stranger.get("/billing", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    # Anything the server keeps for this browser goes under an id it issued.
    await stranger.get("/login")
    token = await csrf_token(stranger)
    failed = await stranger.post(
        "/login", data={"email": "x@example.com", "password": "wrong one!", "_csrf_token": token}
    )
    assert session_cookie(failed) != PLANTED


async def test_a_page_view_does_not_rewrite_the_session(client) -> None:
    await signup(client)
    await client.get("/billing")  # shows and drops the welcome message
    response = await client.get("/billing")
    assert response.status_code == 200
    assert session_cookie(response) is None
