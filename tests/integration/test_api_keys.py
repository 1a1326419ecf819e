"""The per-process API key cache: one lookup per expiry, however many requests arrive at once."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.apikeys.models import ApiKey
from app.apikeys.service import ApiKeyService, KeyCache


def _count_key_lookups(engine: AsyncEngine) -> list[str]:
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "api_keys" in statement:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    return seen


async def test_concurrent_requests_on_a_cold_cache_share_one_lookup(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    _key, raw = await ApiKeyService(session).create("load")
    cache = KeyCache()
    lookups = _count_key_lookups(engine)

    results = await asyncio.gather(*(cache.authenticate(engine, raw) for _ in range(50)))

    assert len(lookups) == 1
    assert {r.name for r in results if r is not None} == {"load"}
    assert all(r is not None for r in results)


async def test_an_unknown_key_is_looked_up_once_and_refused(engine: AsyncEngine) -> None:
    cache = KeyCache()
    lookups = _count_key_lookups(engine)

    results = await asyncio.gather(*(cache.authenticate(engine, "bp_live_nope") for _ in range(20)))

    assert results == [None] * 20
    assert len(lookups) == 1


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_lookup(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    _key, raw = await ApiKeyService(session).create("impatient")
    cache = KeyCache()
    first = asyncio.ensure_future(cache.authenticate(engine, raw))
    second = asyncio.ensure_future(cache.authenticate(engine, raw))
    await asyncio.sleep(0)  # ok: lets both tasks start waiting on the same lookup
    first.cancel()

    found = await second

    assert found is not None and found.name == "impatient"


async def test_use_is_recorded(engine: AsyncEngine, session: AsyncSession) -> None:
    key, raw = await ApiKeyService(session).create("touched")
    cache = KeyCache()

    await cache.authenticate(engine, raw)

    async with engine.connect() as conn:
        used = (
            await conn.execute(select(ApiKey.last_used_at).where(ApiKey.id == key.id))
        ).scalar_one()
    assert used is not None
