"""PostgreSQL behind PgBouncer in transaction mode (issue 18, item 6): DATABASE_PGBOUNCER turns
off every statement cache asyncpg and SQLAlchemy keep per connection, and
DATABASE_LISTEN_URL gives the change listener a connection of its own (LISTEN needs a
session; a transaction-mode pool cannot hold one)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from app.composition import Parts
from app.config import Settings
from app.db import engine as engine_module
from app.db.changes import ChangeWatch
from app.db.engine import create_engine
from tests.support import configured_database_url

PG = "postgresql+asyncpg://app@bouncer:6432/billing"


def _captured(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake(url: str, **kwargs: Any) -> str:
        calls.append({"url": url, **kwargs})
        return "engine"

    monkeypatch.setattr(engine_module, "create_async_engine", fake)
    return calls


def test_the_setting_turns_off_prepared_statement_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _captured(monkeypatch)
    create_engine(PG)
    create_engine(PG, pgbouncer=True)
    create_engine(PG, pgbouncer=True, connect_args={"timeout": 5})
    plain, bounced, with_own = calls
    assert "connect_args" not in plain
    args = bounced["connect_args"]
    assert args["statement_cache_size"] == 0 and args["prepared_statement_cache_size"] == 0
    first, second = args["prepared_statement_name_func"](), args["prepared_statement_name_func"]()
    assert first != second and first.startswith("__asyncpg_")
    assert with_own["connect_args"]["timeout"] == 5
    assert with_own["connect_args"]["statement_cache_size"] == 0
    assert bounced["pool_size"] == plain["pool_size"]  # the pools are sized as before


def test_generic_plans_are_asked_for_only_without_pgbouncer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer's engine plans each statement once per connection (a startup parameter);
    behind PgBouncer statements are not kept, and PgBouncer refuses startup parameters it was
    not told to ignore, so there the setting is left out."""
    calls = _captured(monkeypatch)
    create_engine(PG, generic_plans=True)
    create_engine(PG, pgbouncer=True, generic_plans=True)
    direct, bounced = calls
    assert direct["connect_args"]["server_settings"] == {"plan_cache_mode": "force_generic_plan"}
    assert "server_settings" not in bounced["connect_args"]


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    for name in ("DATABASE_PGBOUNCER", "DATABASE_LISTEN_URL", "USAGE_RETENTION_MONTHS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("USAGE_ARCHIVE_DIR", raising=False)
    default = Settings.from_env()
    assert not default.database_pgbouncer and default.database_listen_url is None
    assert default.usage_retention_months == 0
    assert default.usage_archive_dir == (tmp_path / "archive").resolve()
    monkeypatch.setenv("DATABASE_PGBOUNCER", "1")
    monkeypatch.setenv("DATABASE_LISTEN_URL", "postgresql+asyncpg://app@db:5432/billing")
    monkeypatch.setenv("USAGE_RETENTION_MONTHS", "6")
    set_ = Settings.from_env()
    assert set_.database_pgbouncer and set_.database_listen_url.endswith("@db:5432/billing")
    assert set_.usage_retention_months == 6


async def test_both_of_a_process_pools_get_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def recording(url: str, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return create_engine(url, **kwargs)

    monkeypatch.setattr("app.composition.create_engine", recording)
    settings = replace(Settings.from_env(), database_url=PG, database_pgbouncer=True)
    parts = Parts.build(settings)
    await parts.close()
    assert len(calls) == 2 and all(call["pgbouncer"] for call in calls)


async def test_the_listener_connects_to_the_listen_url(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_engine(PG)
    dsns: list[str] = []

    async def once(self: ChangeWatch, dsn: str) -> None:
        dsns.append(dsn)
        raise SystemExit  # stop after the first attempt

    monkeypatch.setattr(ChangeWatch, "_listen_once", once)
    for watch in (ChangeWatch(engine), ChangeWatch(engine, "postgresql+asyncpg://a:pw@db:5432/b")):
        with pytest.raises(SystemExit):
            await watch._listen()
    assert dsns == ["postgresql://app@bouncer:6432/billing", "postgresql://a:pw@db:5432/b"]
    await engine.dispose()


@pytest.mark.skipif(not configured_database_url(), reason="PostgreSQL not configured")
async def test_queries_run_without_kept_prepared_statements() -> None:
    """Against PostgreSQL itself: with the setting, statements run and asyncpg keeps none
    (each is prepared under a name of its own, so no server connection of a transaction-mode
    pool is ever asked for a statement another client prepared)."""
    url = configured_database_url()
    assert url is not None
    engine = create_engine(url, pgbouncer=True)
    try:
        async with engine.connect() as conn:
            for _ in range(3):
                assert (await conn.execute(text("SELECT 1 + :n"), {"n": 1})).scalar() == 2
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            assert raw._stmt_cache.get_max_size() == 0  # asyncpg's own cache
            names = await conn.execute(text("SELECT name FROM pg_prepared_statements"))
            assert all(name.startswith("__asyncpg_") for name in names.scalars())
    finally:
        await engine.dispose()
