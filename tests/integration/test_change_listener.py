"""PostgreSQL: a process whose LISTEN connection is lost listens again, and revocations reach it
after that (app/db/changes.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.apikeys.models import ApiKey
from app.apikeys.service import ApiKeyService
from app.db.changes import CHANNEL
from app.db.engine import create_engine, create_session_factory
from app.lib.clock import utcnow
from tests.support import configured_database_url

pytestmark = pytest.mark.skipif(
    not (configured_database_url() or "").startswith("postgresql"),
    reason="LISTEN/NOTIFY is PostgreSQL's: set TEST_DATABASE_URL to run this",
)
BALANCES = "/api/v1/customers/x/balances"
# Well below the key cache's 5 s expiry: a refusal within it was heard, not expired.
NOTIFY_BOUND_SECONDS = 2.0


async def until(check: Callable[[], Awaitable[object]], what: str, timeout: float = 10.0) -> object:
    """Poll `check` until it is truthy (a condition wait, bounded)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not (value := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(delay)  # ok: polling interval of a condition wait
        delay = min(delay * 2, 0.2)
    return value


async def listeners(engine: AsyncEngine) -> set[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND query LIKE :listen"
            ),
            {"listen": f"%LISTEN%{CHANNEL}%"},
        )
        return {row.pid for row in rows}


async def test_a_lost_listener_listens_again_and_hears_revocations(
    app: Litestar, client: AsyncTestClient[Litestar], session: AsyncSession, database_url: str
) -> None:
    created, raw = await ApiKeyService(session).create("listened")
    key_id = created.id
    headers = {"Authorization": f"Bearer {raw}"}
    assert (await client.get(BALANCES, headers=headers)).status_code == 404
    admin = create_engine(database_url)
    try:
        before = await until(lambda: listeners(admin), "the app's listener")
        async with admin.connect() as conn:
            await conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) pid"),
                {"pids": list(before)},  # type: ignore[arg-type]
            )

        async def listening_again() -> bool:
            now = await listeners(admin)
            return bool(now) and not (now & before)  # type: ignore[operator]

        await until(listening_again, "a new listener")
        # Cached again (listening anew emptied the caches)...
        assert (await client.get(BALANCES, headers=headers)).status_code == 404
        # ...and revoked by a plain ORM write: this process's cache hears it only by NOTIFY.
        async with create_session_factory(admin)() as other:
            key = await other.get(ApiKey, key_id)
            assert key is not None
            key.revoked_at = utcnow()
            await other.commit()

        async def refused() -> bool:
            response = await client.get(BALANCES, headers=headers)
            return response.status_code == 401

        await until(refused, "the revoked key refused", NOTIFY_BOUND_SECONDS)
    finally:
        await admin.dispose()
