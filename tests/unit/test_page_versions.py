"""The versions the page cache checks (app/db/page_versions.py)."""

from __future__ import annotations

import pytest

from app.db.page_versions import PageVersions, _is_write


@pytest.mark.parametrize(
    ("statement", "write"),
    [
        ("SELECT 1", False),
        ("  select users.id FROM users", False),
        ("PRAGMA wal_checkpoint(PASSIVE)", False),
        ("BEGIN IMMEDIATE", False),
        ("SAVEPOINT sa_1", False),
        ("INSERT INTO users (email) VALUES (?)", True),
        ("UPDATE user_sessions SET last_seen_at = ?", True),
        ("delete from invoices", True),
        ("WITH moved AS (UPDATE totals SET used = 1 RETURNING id) SELECT 1", True),
        ("SETTLE", True),  # anything unknown counts as a write
    ],
)
def test_what_counts_as_a_write(statement: str, write: bool) -> None:
    assert _is_write(statement) is write


def test_a_customers_usage_stamp_moves_only_with_their_usage() -> None:
    versions = PageVersions()
    before = versions.snapshot()
    versions.usage_changed("a")
    _, _, tick, _ = versions.snapshot()
    assert versions.usage_stamp("a") == tick > before[2]
    assert versions.usage_stamp("b") == 0
    versions.usage_changed("b")
    assert versions.usage_stamp("a") == tick  # b's usage leaves a's pages alone
    assert versions.snapshot()[3] == before[3] + 2  # but not pages that loaded no customer
    versions.usage_changed(None)
    assert versions.snapshot()[1] == before[1] + 1  # everyone's
    versions.data_changed()
    assert versions.snapshot()[0] == before[0] + 1
