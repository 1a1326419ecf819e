"""`unicode_lower`: PostgreSQL's own lower(), and on SQLite the function each connection
registers (SQLite's lower() leaves `É` alone)."""

from __future__ import annotations

from sqlalchemy import column, select
from sqlalchemy.dialects import postgresql, sqlite

from app.admin.repository import unicode_lower
from app.db.engine import UNICODE_LOWER, _unicode_lower


def test_it_compiles_per_dialect() -> None:
    query = select(column("id")).where(unicode_lower(column("name")) == "émile")
    assert "WHERE lower(name) =" in str(query.compile(dialect=postgresql.dialect()))
    assert f"WHERE {UNICODE_LOWER}(name) =" in str(query.compile(dialect=sqlite.dialect()))


def test_the_sqlite_function_lowers_every_letter_and_passes_null() -> None:
    assert _unicode_lower("Émile ÜNÏCODE") == "émile ünïcode"
    assert _unicode_lower(None) is None
