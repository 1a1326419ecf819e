"""Fixtures: a migrated database (SQLite, or PostgreSQL with TEST_DATABASE_URL), the app, clients."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.stores.file import FileStore
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.accounts.throttle import LoginThrottle
from app.apikeys.service import KEY_CACHE
from app.apikeys.throttle import KeyFailures
from app.catalog.loader import load_catalog
from app.catalog.models import Catalog
from app.config import PROJECT_ROOT, Settings
from app.db.engine import create_engine, create_session_factory
from app.db.migrations import upgrade
from app.db.models import Base
from app.lib.attempts import MemoryAttempts
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


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """VAR_DIR of the apps the tests share (`app`): their stores are emptied for each test."""
    return tmp_path_factory.mktemp("var")


@pytest.fixture
def settings(var_dir: Path, database_url: str) -> Settings:
    return make_settings(var_dir, database_url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await _truncate(engine)
    await engine.dispose()


_TABLES = [table.name for table in reversed(Base.metadata.sorted_tables)]
# One query naming the tables that hold rows: most tests touch a few of them.
_NON_EMPTY = text(
    " UNION ALL ".join(f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM {t})" for t in _TABLES)
)


# PostgreSQL: every sequence back to its start, as TRUNCATE ... RESTART IDENTITY would (which
# costs ~80 ms a test for locking and recreating every table's files).
_RESTART_SEQUENCES = text(
    "SELECT setval(oid, 1, false) FROM pg_class"
    " WHERE relkind = 'S' AND relnamespace = current_schema()::regnamespace"
)


async def _truncate(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        non_empty = set((await conn.execute(_NON_EMPTY)).scalars())
        for name in _TABLES:  # children first
            if name in non_empty:
                await conn.execute(text(f"DELETE FROM {name}"))
        if engine.dialect.name == "postgresql":
            await conn.execute(_RESTART_SEQUENCES)


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with create_session_factory(engine)() as session:
        yield session


class SharedApps:
    """One app per distinct settings for the whole run: building one costs ~0.1 s (Litestar
    registers every route), more than most tests. Each test starts the app anew (its client
    runs the lifespan) after `forget_process_state`, so a shared app is what a restarted
    process would be, on a database the previous test left empty."""

    def __init__(self) -> None:
        self._apps: list[tuple[Settings, Catalog, Litestar]] = []

    def get(self, settings: Settings, catalog: Catalog) -> Litestar:
        for known_settings, known_catalog, app in self._apps:
            if known_settings == settings and known_catalog is catalog:
                return app
        app = create_app(settings, catalog)
        self._apps.append((settings, catalog, app))
        return app


@pytest.fixture(scope="session")
def shared_apps() -> SharedApps:
    return SharedApps()


async def forget_process_state(app: Litestar) -> None:
    """Empty what an app keeps in memory or in VAR_DIR between requests: its stores
    (sessions, used portal links), the login and API-key attempt counters, the
    balance and API-key caches."""
    # The registry has no public listing; this also reaches stores made on first use.
    for store in list(app.stores._stores.values()):
        if isinstance(store, FileStore):
            shutil.rmtree(store.path, ignore_errors=True)
        else:
            await store.delete_all()
    login_throttle: LoginThrottle = app.dependencies["login_throttle"].dependency()
    assert isinstance(login_throttle.counter, MemoryAttempts), "a shared app keeps no Redis"
    login_throttle.counter = MemoryAttempts(login_throttle.counter.window)
    failures: KeyFailures = app.state["api_key_failures"]
    assert isinstance(failures.counter, MemoryAttempts), "a shared app keeps no Redis"
    app.state["api_key_failures"] = replace(
        failures, counter=MemoryAttempts(failures.counter.window), _blocked={}
    )
    app.state["usage_writer"].balances.forget(None)
    app.state.pop("admin_overview", None)  # the admin overview's figures (app/admin/metrics.py)
    KEY_CACHE.clear()


@pytest.fixture
async def app(
    settings: Settings, catalog: Catalog, engine: AsyncEngine, shared_apps: SharedApps
) -> Litestar:
    # `engine` is requested so the tables are emptied after the test.
    app = shared_apps.get(settings, catalog)
    await forget_process_state(app)
    return app


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
