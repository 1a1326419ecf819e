"""Migrations: empty → head → base → head on SQLite and PostgreSQL; models and migrations agree.

Each test migrates its own fresh database (a temp SQLite file, or a temporary PostgreSQL
database created next to TEST_DATABASE_URL's and dropped afterwards), so the shared test
database is never touched. Nothing here names a revision: new migrations are covered as
they are added.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Index, MetaData, String, func, inspect, text
from sqlalchemy.engine import Connection, make_url

from app.db.engine import create_engine
from app.db.migrations import (
    DatabaseNotMigrated,
    alembic_config,
    downgrade,
    ensure_migrated,
    head_revision,
    upgrade,
)
from app.db.models import Base
from tests import support
from tests.conftest import PG_SKIP_REASON

# Alembic's own bookkeeping table is not part of the models.
VERSION_TABLE = "alembic_version"


async def _create_or_drop_postgres(admin_url: str, statement: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database, on each engine."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    base = support.configured_database_url()
    if not base:
        pytest.skip(PG_SKIP_REASON)
    name = f"billing_migtest_{secrets.token_hex(6)}"
    # CREATE/DROP DATABASE cannot run inside a transaction; connect to the maintenance db.
    admin_url = make_url(base).set(database="postgres").render_as_string(hide_password=False)
    asyncio.run(_create_or_drop_postgres(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(
            _create_or_drop_postgres(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


def _inspect(url: str, work: Any) -> Any:
    async def run() -> Any:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _expression_indexes(metadata: MetaData) -> set[str]:
    return {
        str(index.name)
        for table in metadata.tables.values()
        for index in table.indexes
        if any(not isinstance(expr, Column) for expr in index.expressions)
    }


def _compare(conn: Connection, metadata: MetaData) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    if conn.dialect.name != "sqlite":
        return compare_metadata(context, metadata)
    # SQLite's reflection cannot read expression indexes, so autogenerate skips them: check
    # their names instead.
    with support.unreflected_expression_indexes():
        diff = compare_metadata(context, metadata)
    names = {row[0] for row in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
    missing = _expression_indexes(metadata) - names
    return [*diff, *(("missing_expression_index", name) for name in sorted(missing))]


def _diff(conn: Connection) -> list[Any]:
    return _compare(conn, Base.metadata)


def _models_copy() -> MetaData:
    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    return metadata


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _model_tables() -> set[str]:
    return set(Base.metadata.tables)


def test_the_migration_history_is_one_straight_line() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    heads = script.get_heads()
    assert len(heads) == 1, f"several heads {heads}: add a merge migration"
    assert head_revision() == heads[0]


def test_upgrade_downgrade_upgrade(fresh_url: str) -> None:
    assert _inspect(fresh_url, _tables) == set()

    upgrade(fresh_url)
    assert _inspect(fresh_url, _revision) == head_revision()
    assert _inspect(fresh_url, _tables) == _model_tables() | {VERSION_TABLE}

    upgrade(fresh_url)  # a second run is a no-op
    assert _inspect(fresh_url, _revision) == head_revision()

    downgrade(fresh_url)
    assert _inspect(fresh_url, _revision) is None
    assert _inspect(fresh_url, _tables) - {VERSION_TABLE} == set()

    upgrade(fresh_url)
    assert _inspect(fresh_url, _revision) == head_revision()
    assert _inspect(fresh_url, _tables) == _model_tables() | {VERSION_TABLE}


def test_every_step_downgrades_and_upgrades_again(fresh_url: str) -> None:
    """Walk the history one revision at a time: each downgrade undoes exactly its upgrade."""
    script = ScriptDirectory.from_config(alembic_config(fresh_url))
    revisions = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        upgrade(fresh_url, revision)
        after_upgrade = _inspect(fresh_url, _tables)
        downgrade(fresh_url, "-1")
        upgrade(fresh_url, revision)
        assert _inspect(fresh_url, _revision) == revision
        assert _inspect(fresh_url, _tables) == after_upgrade


def test_models_and_migrations_agree(fresh_url: str) -> None:
    upgrade(fresh_url)
    diff = _inspect(fresh_url, _diff)
    assert diff == [], (
        "the models differ from the migrated schema; add a migration "
        f"(alembic revision --autogenerate):\n{diff}"
    )


def test_the_comparison_would_notice_a_model_change(fresh_url: str) -> None:
    """Guards the test above: a column the migrations lack shows up in the diff."""
    upgrade(fresh_url)
    metadata = _models_copy()
    metadata.tables["users"].append_column(Column("nickname", String(40), nullable=True))

    def diff(conn: Connection) -> list[Any]:
        return _compare(conn, metadata)

    changes = _inspect(fresh_url, diff)
    assert [(c[0], c[2], c[3].name) for c in changes] == [("add_column", "users", "nickname")]


def test_the_comparison_would_notice_a_missing_expression_index(fresh_url: str) -> None:
    """SQLite cannot reflect lower(...) indexes; the comparison still notices one missing."""
    upgrade(fresh_url)
    metadata = _models_copy()
    Index("ix_users_name_lower", func.lower(metadata.tables["users"].c.name))
    changes = _inspect(fresh_url, lambda conn: _compare(conn, metadata))
    assert [(c[0], c[1] if isinstance(c[1], str) else c[1].name) for c in changes] in (
        [("missing_expression_index", "ix_users_name_lower")],  # SQLite
        [("add_index", "ix_users_name_lower")],  # PostgreSQL
    )


async def test_start_up_check_accepts_only_head(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    try:
        with pytest.raises(DatabaseNotMigrated, match="billing-portal migrate"):
            await ensure_migrated(engine)
        # upgrade() runs alembic's env.py, which calls asyncio.run: not on this loop.
        await asyncio.to_thread(upgrade, fresh_url)
        await ensure_migrated(engine)
    finally:
        await engine.dispose()
