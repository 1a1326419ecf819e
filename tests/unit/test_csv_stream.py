"""The streamed CSV helpers (app/lib/csv_stream.py) and report date ranges (app/lib/date_ranges.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest

from app.lib.csv_stream import csv_chunks, keyset_pages
from app.lib.date_ranges import DateRange, parse_range
from app.lib.errors import ValidationFailed


async def test_keyset_pages_reads_pages_past_the_last_key() -> None:
    rows = [10, 20, 30, 40, 50]
    calls: list[int | None] = []

    async def fetch(after: int | None, size: int) -> list[int]:
        calls.append(after)
        return [r for r in rows if after is None or r > after][:size]

    got = [row async for row in keyset_pages(fetch, lambda r: r, size=2)]
    assert got == rows
    assert calls == [None, 20, 40]  # the third page is short: no fourth query


async def test_csv_chunks_writes_a_chunk_per_page() -> None:
    async def rows() -> AsyncIterator[dict[str, object]]:
        for n in range(5):
            yield {"n": n, "text": "a,b" if n == 0 else "x", "other": "ignored"}

    chunks = [c async for c in csv_chunks(("n", "text"), rows(), every=2)]
    assert len(chunks) == 3
    assert b"".join(chunks).decode().splitlines() == [
        "n,text",
        '0,"a,b"',
        "1,x",
        "2,x",
        "3,x",
        "4,x",
    ]
    plain = [c async for c in csv_chunks(("n",), [{"n": 1}])]
    assert plain == [b"n\r\n1\r\n"]


DEFAULT = DateRange(date(2026, 3, 1), date(2026, 3, 31))


def test_a_range_is_both_days_included_in_utc() -> None:
    chosen = parse_range("2026-02-01", "2026-02-28", default=DEFAULT)
    assert (chosen.start, chosen.end) == (
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert chosen.days == 28
    assert parse_range("", "", default=DEFAULT) == DEFAULT
    assert parse_range("2026-03-05", "", default=DEFAULT) == DateRange(
        date(2026, 3, 5), date(2026, 3, 31)
    )


@pytest.mark.parametrize(
    ("first", "last", "code", "field"),
    [
        ("2026-03-02", "2026-03-01", "invalid_range", "to"),
        ("2025-01-01", "2026-01-02", "invalid_range", "to"),
        ("03/01/2026", "2026-03-02", "invalid_date", "from"),
        ("2026-03-01", "2026-13-01", "invalid_date", "to"),
    ],
)
def test_bad_ranges(first: str, last: str, code: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_range(first, last, default=DEFAULT)
    assert (caught.value.code, caught.value.extra["field"]) == (code, field)
    assert parse_range("2025-01-01", "2026-01-01", default=DEFAULT).days == 366
