"""The app refuses to start on a database that is not at the migrations' head."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from app.catalog.models import Catalog
from app.db.engine import create_engine
from app.db.migrations import DatabaseNotMigrated, upgrade
from app.main import create_app
from app.web.fast_paths import GC_THRESHOLDS
from tests.support import make_settings


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'startup.db'}"


def _find(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    if isinstance(error, kind):
        return error
    for inner in getattr(error, "exceptions", ()):
        found = _find(inner, kind)
        if found is not None:
            return found
    return None


async def _start_up_error(app: Litestar) -> DatabaseNotMigrated:
    """Run the app's start-up; the test client re-raises lifespan errors inside a task group."""
    try:
        async with AsyncTestClient(app):
            pass
    except BaseException as error:
        found = _find(error, DatabaseNotMigrated)
        if found is None:
            raise
        assert isinstance(found, DatabaseNotMigrated)
        return found
    raise AssertionError("the app started on a database that is not at head")


async def test_refuses_an_empty_database_and_names_the_command(tmp_path: Path, catalog: Catalog):
    app = create_app(make_settings(tmp_path / "var", _sqlite_url(tmp_path)), catalog)
    message = str(await _start_up_error(app))
    assert "billing-portal migrate" in message
    assert "empty schema" in message
    assert "startup.db" in message


async def test_refuses_a_database_at_another_revision(tmp_path: Path, catalog: Catalog):
    url = _sqlite_url(tmp_path)
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    await engine.dispose()
    app = create_app(make_settings(tmp_path / "var", url), catalog)
    message = str(await _start_up_error(app))
    assert "at from_the_future" in message
    assert "billing-portal migrate" in message


async def test_starts_on_a_migrated_database(tmp_path: Path, catalog: Catalog):
    url = _sqlite_url(tmp_path)
    await asyncio.to_thread(upgrade, url)
    app = create_app(make_settings(tmp_path / "var", url), catalog)
    async with AsyncTestClient(app) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    # Health checks are machine traffic: no session and no CSRF token cookie.
    assert "set-cookie" not in response.headers


async def test_only_an_app_that_owns_its_process_tunes_the_collector(
    tmp_path: Path, catalog: Catalog
):
    url = _sqlite_url(tmp_path)
    await asyncio.to_thread(upgrade, url)
    before = gc.get_threshold()
    try:
        async with AsyncTestClient(create_app(make_settings(tmp_path / "a", url), catalog)):
            assert gc.get_threshold() == before
        async with AsyncTestClient(
            create_app(make_settings(tmp_path / "b", url), catalog, owns_process=True)
        ):
            assert gc.get_threshold() == GC_THRESHOLDS
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
