"""Failed logins are limited per account and per client address, shared through Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.accounts.throttle import ACCOUNT_FACTOR, ADDRESS_FACTOR, SIGNUPS_PER_ADDRESS
from app.lib.clients import parse_networks
from app.main import create_app
from tests.conftest import csrf_token, signup
from tests.support import Peer, make_settings

PASSWORD = "correct horse battery"
PROXY = "10.0.0.2"
REDIS_URL = "redis://127.0.0.1:6379/3"
LIMIT = 2


def build(tmp_path, database_url, catalog, **overrides) -> Litestar:
    settings = make_settings(
        tmp_path / f"var-{uuid.uuid4().hex}",
        database_url,
        login_rate_limit=LIMIT,
        trusted_proxies=parse_networks(PROXY),
        **overrides,
    )
    return create_app(settings, catalog)


@pytest.fixture
async def portal(tmp_path, database_url, catalog, engine) -> AsyncIterator[AsyncTestClient]:
    """A client of the app, its lifespan running; `browser()` makes more on its event loop
    (the app's connection pools are bound to the loop that opened them)."""
    async with opened(build(tmp_path, database_url, catalog)) as client:
        yield client


APPS: dict[int, Litestar] = {}


@asynccontextmanager
async def opened(app: Litestar) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(Peer(app, PROXY), base_url="http://testserver.local") as client:  # type: ignore[arg-type]
        APPS[id(client)] = app
        try:
            yield client
        finally:
            del APPS[id(client)]


def browser(primary: AsyncTestClient, forwarded_for: str | None = None, peer: str = PROXY):
    """Another browser reaching `primary`'s app from `peer`, through a proxy when
    `forwarded_for` is given."""
    app = APPS[id(primary)]
    client = AsyncTestClient(Peer(app, peer), base_url="http://testserver.local")  # type: ignore[arg-type]
    client.blocking_portal = primary.blocking_portal
    if forwarded_for:
        client.headers["X-Forwarded-For"] = forwarded_for
    return client


async def login(client, email: str, password: str):
    token = await csrf_token(client)
    return await client.post(
        "/login",
        data={"email": email, "password": password, "_csrf_token": token},
        follow_redirects=False,
    )


async def accounts(primary: AsyncTestClient, *emails: str) -> None:
    client = browser(primary, "192.0.2.200")
    for email in emails:
        client.cookies.clear()
        await signup(client, email, PASSWORD)


async def test_failures_on_one_account_from_one_address_are_limited(portal) -> None:
    await accounts(portal, "ada@example.com")
    attacker = browser(portal, "198.51.100.1")
    for _ in range(LIMIT):
        assert (await login(attacker, "ada@example.com", "wrong guess!")).status_code == 400
    refused = await login(attacker, "ada@example.com", PASSWORD)  # even the right one
    assert refused.status_code == 429
    assert "Too many attempts. Try again in 15 minutes." in refused.text
    assert 0 < int(refused.headers["retry-after"]) <= 900
    # Someone else's account from the same address is not blocked.
    await accounts(portal, "grace@example.com")
    assert (await login(attacker, "grace@example.com", PASSWORD)).status_code == 303
    # The account's owner, from their own address, logs in.
    owner = browser(portal, "198.51.100.2")
    assert (await login(owner, "ada@example.com", PASSWORD)).status_code == 303


async def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(portal) -> None:
    await accounts(portal, "ada@example.com")
    for n in range(LIMIT):
        attacker = browser(portal, f"198.51.100.{n}", peer="203.0.113.5")
        assert (await login(attacker, "ada@example.com", "wrong guess!")).status_code == 400
    attacker = browser(portal, "198.51.100.99", peer="203.0.113.5")
    assert (await login(attacker, "ada@example.com", PASSWORD)).status_code == 429


async def test_a_successful_login_forgets_the_earlier_failures(portal) -> None:
    await accounts(portal, "ada@example.com")
    person = browser(portal, "198.51.100.1")
    for _ in range(LIMIT - 1):
        assert (await login(person, "ada@example.com", "typo typo")).status_code == 400
    assert (await login(person, "ada@example.com", PASSWORD)).status_code == 303
    person.cookies.clear()
    for _ in range(LIMIT - 1):
        assert (await login(person, "ada@example.com", "typo typo")).status_code == 400
    assert (await login(person, "ada@example.com", PASSWORD)).status_code == 303


async def test_one_account_guessed_from_many_addresses_is_limited(portal) -> None:
    await accounts(portal, "ada@example.com")
    for n in range(LIMIT * ACCOUNT_FACTOR):
        attacker = browser(portal, f"198.51.100.{n}")
        assert (await login(attacker, "ada@example.com", "wrong guess!")).status_code == 400
    anyone = browser(portal, "198.51.100.250")
    assert (await login(anyone, "ada@example.com", PASSWORD)).status_code == 429


async def test_one_address_trying_many_accounts_is_limited(portal) -> None:
    attacker = browser(portal, "198.51.100.1")
    for n in range(LIMIT * ADDRESS_FACTOR):
        response = await login(attacker, f"user{n}@example.com", "wrong guess!")
        assert response.status_code == 400
    assert (await login(attacker, "new@example.com", "wrong guess!")).status_code == 429


async def test_signups_are_limited_per_address(portal) -> None:
    client = browser(portal, "198.51.100.1")
    for n in range(SIGNUPS_PER_ADDRESS):
        client.cookies.clear()
        await signup(client, f"user{n}@example.com", PASSWORD)
    client.cookies.clear()
    token = await csrf_token(client, "/signup")
    response = await client.post(
        "/signup",
        data={"email": "one-more@example.com", "password": PASSWORD, "_csrf_token": token},
    )
    assert response.status_code == 429 and "Retry-After" in response.headers
    other = browser(portal, "198.51.100.2")
    await signup(other, "elsewhere@example.com", PASSWORD)


async def test_failures_are_shared_across_processes_through_redis(
    tmp_path, database_url, catalog, engine
) -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).flushdb()
    except redis.RedisError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: shared login limits are untested")
    first = build(tmp_path, database_url, catalog, redis_url=REDIS_URL)
    second = build(tmp_path, database_url, catalog, redis_url=REDIS_URL)
    async with opened(first) as one_app:
        await accounts(one_app, "ada@example.com")
        one = browser(one_app, "198.51.100.1")
        # The second app on its own event loop, as another process would be.
        async with opened(second) as two_app:
            two = browser(two_app, "198.51.100.1")
            for n in range(LIMIT):
                client = one if n % 2 else two
                response = await login(client, "ada@example.com", "wrong guess!")
                assert response.status_code == 400
            assert (await login(one, "ada@example.com", PASSWORD)).status_code == 429
            assert (await login(two, "ada@example.com", PASSWORD)).status_code == 429
