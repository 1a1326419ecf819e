"""A file download streamed as it is produced (the data export, the usage reports)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar.response import Stream

CSV = "text/csv; charset=utf-8"


def download(chunks: AsyncIterator[bytes], filename: str, media_type: str = CSV) -> Stream:
    """An attachment named `filename`, never stored by a browser or proxy."""
    return Stream(
        chunks,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
