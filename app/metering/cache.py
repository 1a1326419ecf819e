"""A short-lived, per-process cache of balance reads.

Exact within a process: the writer drops a customer's entry as soon as a batch touching them
commits. Plan changes and credit grants are announced to every process (app/db/changes.py), so
they show at once everywhere; other processes' usage within milliseconds (`Gathered`: gathered
for `GATHER_SECONDS`, then one announcement), and after at most `BALANCE_CACHE_SECONDS` when an
announcement is lost. Enforcement never reads it: the writer decides from the database.

A miss is read once however many requests want it (`load`): when an entry expired under load,
dozens of concurrent requests for the same customer used to read it each, on as many pooled
connections (opening overflow connections on PostgreSQL, closed again at check-in): the long
tail of balance reads (p99 of 200 ms and more at 64 connections).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

BALANCE_CACHE_SECONDS = 1.0
_MAX_ENTRIES = 50_000


class BalanceCache:
    def __init__(self, ttl: float = BALANCE_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Any]] = {}
        # The read under way per customer; dropped (so its result is not kept, and the next
        # request reads anew) when a write or an announcement makes the customer's entry stale.
        self._loading: dict[str, asyncio.Task[Any]] = {}

    def get(self, external_id: str) -> Any | None:
        entry = self._entries.get(external_id)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop(external_id, None)
            return None
        return entry[1]

    def put(self, external_id: str, value: Any) -> None:
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[external_id] = (time.monotonic() + self.ttl, value)

    def drop(self, external_ids: set[str]) -> None:
        for external_id in external_ids:
            self._entries.pop(external_id, None)
            self._loading.pop(external_id, None)

    def forget(self, external_id: str | None) -> None:
        """Drop one customer's entry, or all of them (None)."""
        if external_id is None:
            self._entries.clear()
            self._loading.clear()
        else:
            self._entries.pop(external_id, None)
            self._loading.pop(external_id, None)

    async def load(self, external_id: str, read: Callable[[], Awaitable[Any]]) -> Any:
        """The cached entry, or what `read()` returns (kept unless None): one read per customer
        at a time, shared by every request that misses meanwhile. A read that a `drop` or
        `forget` overtook is not kept, and requests after the drop start a new one, so a
        request that follows a committed write never gets a value read before it."""
        cached = self.get(external_id)
        if cached is not None:
            return cached
        task = self._loading.get(external_id)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(self._load(external_id, read))
            task.add_done_callback(_retrieve)
            self._loading[external_id] = task
        # Shielded: a request that goes away does not cancel the read others wait for.
        return await asyncio.shield(task)

    async def _load(self, external_id: str, read: Callable[[], Awaitable[Any]]) -> Any:
        me = asyncio.current_task()
        try:
            value = await read()
        finally:
            current = self._loading.get(external_id) is me
            if current:
                del self._loading[external_id]
        if current and value is not None:
            self.put(external_id, value)
        return value


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A failed read whose waiters all went away is not reported as never retrieved."""
    if not task.cancelled():
        task.exception()
