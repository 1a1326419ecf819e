"""The pages' event queries stay index-bound however many events a customer has."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Catalog
from app.metering.service import MeteringService


async def test_latest_events_are_read_from_the_index_without_sorting(
    session: AsyncSession, catalog: Catalog
) -> None:
    if session.bind.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN output is SQLite's")
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    sync_engine = session.bind.sync_engine
    event.listen(sync_engine, "before_cursor_execute", capture)
    try:
        await MeteringService(session, catalog, None, "").recent_events(1)  # type: ignore[arg-type]
    finally:
        event.remove(sync_engine, "before_cursor_execute", capture)
    statement, parameters = statements[-1]
    conn = await session.connection()
    rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
    plan = " | ".join(str(row[-1]) for row in rows)
    assert "ix_usage_events_customer_id" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
