"""Usage announcements of many customers reach another process's watch in full (issue 18,
item 4): lines are cut below PostgreSQL's NOTIFY payload limit (8000 bytes) and sent in one
statement; on SQLite they are one append to the changes file."""

from __future__ import annotations

import asyncio
import time

from app.db.changes import BALANCES, ChangeWatch, Gathered, _many_lines
from app.db.engine import create_engine


async def test_a_batch_of_many_customers_is_heard_in_full(database_url: str) -> None:
    # Long ids, some not ASCII (json escapes them: six bytes a character): several lines.
    customers = {f"customer-{n:04}-{'é' * 40}" for n in range(600)}
    assert len(_many_lines(BALANCES, customers, "x")) > 10
    engine = create_engine(database_url)
    watch = ChangeWatch(engine)
    heard: set[str | None] = set()
    watch.on(BALANCES, heard.add)
    await watch.start()
    writer = Gathered(engine, BALANCES)
    try:
        heard.clear()  # a listener that starts announces "everything changed" (None)
        writer.add(customers)
        deadline = time.monotonic() + 5
        while heard != customers:
            assert time.monotonic() < deadline, f"heard {len(heard)} of {len(customers)}"
            await asyncio.sleep(0.01)  # ok: polling interval of a condition wait
            watch.poll()
    finally:
        await writer.close()
        await watch.stop()
        await engine.dispose()
