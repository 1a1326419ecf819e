"""The page cache across processes (app/billing/page_cache.py): a write through another process
shows on the next page load within a second, and only its announcement makes it so.

Two real `billing-portal serve` processes on one database (SQLite; PostgreSQL too when
TEST_DATABASE_URL is set: `pair` from test_changes_across_processes). A browser logged in on
the first loads its dashboard; writes go through the second, or straight into the database from
this test's process.
"""

from __future__ import annotations

import asyncio
import sqlite3

import httpx

from app.catalog.loader import load_catalog
from app.config import PROJECT_ROOT
from app.db.changes import CHANNEL, changes_file
from app.db.page_versions import PAGES
from tests.factories import api_key_in, user_in
from tests.integration.test_changes_across_processes import Pair, pair  # noqa: F401
from tests.integration.test_processes_as_one import _log_in
from tests.servers import record_usage
from tests.support import wait_until

# What a write through another process may take to show (gathered usage: 50 ms).
BOUND_SECONDS = 1.0


def _write_unannounced(database_url: str, statement: str, *args: str) -> None:
    """A write no process hears of (no SQLAlchemy, so no hooks; no announcement)."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.split("///", 1)[1]) as conn:
            conn.execute(statement.replace("$1", "?").replace("$2", "?"), args)
        return

    async def run() -> None:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            await conn.execute(statement, *args)
        finally:
            await conn.close()

    asyncio.run(run())


def _announce_pages(database_url: str) -> None:
    """What another process's write announces (app/db/page_versions.py)."""
    from sqlalchemy.engine import make_url

    from app.db import change_file

    path = changes_file(make_url(database_url))
    if path is not None:
        change_file.append(path, [f'["{PAGES}", null]\n'.encode()])
    else:
        _write_unannounced(database_url, f"SELECT pg_notify('{CHANNEL}', $1)", f'["{PAGES}", null]')


def test_writes_through_another_process_show_on_the_next_page(pair: Pair) -> None:  # noqa: F811
    first, second = pair.first, pair.second
    user = user_in(pair.database_url, load_catalog(PROJECT_ROOT / "catalog.toml"))
    key = api_key_in(pair.database_url, "page-cache")
    with httpx.Client(follow_redirects=False) as browser:
        assert _log_in(browser, first, user.email, user.password) == 303

        def dashboard() -> str:
            answer = browser.get(f"{first.url}/billing")
            assert answer.status_code == 200, answer.text
            return answer.text

        assert user.email in dashboard() and "0 of 1,000 used" in dashboard()
        # Unannounced, a write stays unseen: the page comes from the cache...
        _write_unannounced(
            pair.database_url,
            "UPDATE users SET email = $1 WHERE email = $2",
            "x" + user.email,
            user.email,
        )
        assert "x" + user.email not in dashboard()
        # ...until the announcement another process's write sends.
        _announce_pages(pair.database_url)
        wait_until(lambda: "x" + user.email in dashboard(), BOUND_SECONDS, what="announced")

        record_usage(second, key, user.external_id, 5)  # usage through the other process
        wait_until(lambda: "5 of 1,000 used" in dashboard(), BOUND_SECONDS, what="usage")

        changed = httpx.post(  # a plan change through the other process (the ORM)
            f"{second.url}/api/v1/customers",
            headers={"Authorization": f"Bearer {key}"},
            json={"customer": {"external_id": user.external_id, "plan": "pro"}},
        )
        assert changed.status_code == 200, changed.text
        wait_until(lambda: "5 of 10,000 used" in dashboard(), BOUND_SECONDS, what="plan")
