"""Streamed CSV downloads: rows read a page at a time (keyset pagination, one short query per
page) and written out as they come, so a download of millions of rows costs the memory of one
page. Used by the data export (app/privacy/export.py) and the usage reports
(app/billing/usage_export.py, app/admin/usage_reports.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

PAGE = 1000

T = TypeVar("T")
K = TypeVar("K")


async def keyset_pages(
    fetch: Callable[[K | None, int], Awaitable[Sequence[T]]],
    key: Callable[[T], K],
    size: int = PAGE,
) -> AsyncIterator[T]:
    """Every row of a keyset-paginated query: `fetch(after, size)` reads at most `size` rows
    past the key `after` (None: from the first), in key order; `key(row)` is a row's key."""
    after: K | None = None
    while True:
        page = await fetch(after, size)
        for row in page:
            yield row
        if len(page) < size:
            return
        after = key(page[-1])


async def csv_chunks(
    columns: Sequence[str],
    rows: AsyncIterator[dict[str, Any]] | Iterable[dict[str, Any]],
    every: int = PAGE,
) -> AsyncIterator[bytes]:
    """The header row, then the rows (dicts by column name; other keys ignored), as UTF-8 CSV
    in chunks of `every` rows."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    count = 0
    if isinstance(rows, AsyncIterator):
        async for row in rows:
            writer.writerow(row)
            count += 1
            if count % every == 0:
                yield _drain(buffer)
    else:
        for row in rows:
            writer.writerow(row)
            count += 1
            if count % every == 0:
                yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return data
