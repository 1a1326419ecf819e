"""Invalid API keys are throttled per client address (issue 15, item 9): past the limit a 429
with Retry-After and no database lookup; a valid key never pays for the count."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import pytest
import redis
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from app.apikeys.models import TEST_PREFIX
from app.apikeys.service import ApiKeyService
from app.lib.clients import parse_networks
from app.main import create_app
from tests.support import Peer, make_settings

LIMIT = 4
PROXY = "10.0.0.2"
REDIS_URL = "redis://127.0.0.1:6379/6"


def build(tmp_path, database_url, catalog, **overrides: Any) -> Litestar:
    settings = make_settings(
        tmp_path / f"var-{uuid.uuid4().hex}",
        database_url,
        api_key_failure_limit=LIMIT,
        trusted_proxies=parse_networks(PROXY),
        **overrides,
    )
    return create_app(settings, catalog)


def backend(app: Litestar, forwarded_for: str, peer: str = PROXY) -> AsyncTestClient[Any]:
    client = AsyncTestClient(Peer(app, peer), base_url="http://testserver.local")  # type: ignore[arg-type]
    client.headers["X-Forwarded-For"] = forwarded_for
    return client


def random_key() -> str:
    return TEST_PREFIX + secrets.token_urlsafe(32)


async def balances(client: AsyncTestClient[Any], key: str) -> Any:
    return await client.get(
        "/api/v1/customers/nobody/balances", headers={"Authorization": f"Bearer {key}"}
    )


async def test_invalid_keys_past_the_limit_are_429_without_a_database_lookup(
    tmp_path, database_url, catalog, engine
) -> None:
    app = build(tmp_path, database_url, catalog)
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if "api_keys" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    async with backend(app, "198.51.100.7") as client:
        for _ in range(LIMIT):
            response = await balances(client, random_key())
            assert response.status_code == 401
        event.listen(app.state["engine"].sync_engine, "before_cursor_execute", before)
        try:
            for _ in range(20):
                response = await balances(client, random_key())
                assert response.status_code == 429
        finally:
            event.remove(app.state["engine"].sync_engine, "before_cursor_execute", before)
    assert response.json()["error"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert "Try again in" in response.json()["message"]
    assert seen == []


async def test_a_valid_key_never_pays_and_works_from_a_throttled_address(
    tmp_path, database_url, catalog, engine, session: AsyncSession
) -> None:
    _key, valid = await ApiKeyService(session).create("backend")
    app = build(tmp_path, database_url, catalog)
    failures = app.state["api_key_failures"]
    calls: list[str] = []

    class Spy:
        window = failures.counter.window

        async def add(self, key: str) -> tuple[int, int]:
            calls.append(key)
            return await real.add(key)

    real, failures.counter = failures.counter, Spy()
    async with backend(app, "198.51.100.8") as client:
        for _ in range(50):
            assert (await balances(client, valid)).status_code == 404  # authenticated
        assert calls == []
        for _ in range(LIMIT + 1):
            await balances(client, random_key())
        assert (await balances(client, random_key())).status_code == 429
        # The valid key, known to this process, still works from the blocked address.
        assert (await balances(client, valid)).status_code == 404
    # Another client behind the same trusted proxy has its own address and count.
    async with backend(app, "198.51.100.9") as other:
        assert (await balances(other, random_key())).status_code == 401


async def test_failures_are_counted_across_processes_through_redis(
    tmp_path, database_url, catalog, engine
) -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).flushdb()
    except redis.RedisError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: shared API key limits are untested")
    first = build(tmp_path, database_url, catalog, redis_url=REDIS_URL)
    second = build(tmp_path, database_url, catalog, redis_url=REDIS_URL)
    async with backend(first, "198.51.100.10") as one, backend(second, "198.51.100.10") as two:
        for n in range(LIMIT):
            assert (await balances(one if n % 2 else two, random_key())).status_code == 401
        assert (await balances(one, random_key())).status_code == 429
        assert (await balances(two, random_key())).status_code == 429
