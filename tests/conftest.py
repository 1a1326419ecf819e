"""Fixtures: a migrated database (SQLite, or PostgreSQL with TEST_DATABASE_URL), the app, clients."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.catalog.loader import load_catalog
from app.catalog.models import Catalog
from app.config import PROJECT_ROOT, Settings
from app.db.engine import create_engine, create_session_factory
from app.db.migrations import upgrade
from app.db.models import Base
from app.main import create_app
from tests.support import configured_database_url, make_settings

PG_SKIP_REASON = "PostgreSQL not configured: set TEST_DATABASE_URL (as .ci/run does) to run this"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if "integration" in path.parts:
            item.add_marker(pytest.mark.db)
        if "e2e" in path.parts:
            item.add_marker(pytest.mark.e2e)


async def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = configured_database_url()
    if url:
        asyncio.run(_reset_postgres(url))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(PROJECT_ROOT / "catalog.toml")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "var", database_url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await _truncate(engine)
    await engine.dispose()


async def _truncate(engine: AsyncEngine) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                await conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with create_session_factory(engine)() as session:
        yield session


@pytest.fixture
def app(settings: Settings, catalog: Catalog, engine: AsyncEngine) -> Litestar:
    # `engine` is requested so the tables are emptied after the test.
    return create_app(settings, catalog)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        yield client


def sibling_client(primary: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    """Another client of the same app (its own cookies) on the primary's event loop: the
    app's connection pools are bound to the loop that opened them (asyncpg refuses a
    foreign loop), so every client of one app must share it."""
    sibling = AsyncTestClient(primary.app, base_url=str(primary.base_url))
    sibling.blocking_portal = primary.blocking_portal
    return sibling


_CSRF_INPUT = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def csrf_token(client: AsyncTestClient[Litestar], path: str = "/login") -> str:
    response = await client.get(path)
    match = _CSRF_INPUT.search(response.text)
    assert match, f"no CSRF field on {path}"
    return match.group(1)


async def signup(
    client: AsyncTestClient[Litestar],
    email: str = "ada@example.com",
    password: str = "correct horse battery",
    name: str = "Ada",
) -> None:
    token = await csrf_token(client, "/signup")
    response = await client.post(
        "/signup",
        data={"email": email, "password": password, "name": name, "_csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
