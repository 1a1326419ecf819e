"""A short-lived, per-process cache of balance reads.

Exact within a process: the writer drops a customer's entry as soon as a batch touching them
commits. Plan changes and credit grants are announced to every process (app/db/changes.py), so
they show at once everywhere; other processes' usage within milliseconds (`Gathered`: gathered
for `GATHER_SECONDS`, then one announcement), and after at most `BALANCE_CACHE_SECONDS` when an
announcement is lost. Enforcement never reads it: the writer decides from the database.
"""

from __future__ import annotations

import time
from typing import Any

BALANCE_CACHE_SECONDS = 1.0
_MAX_ENTRIES = 50_000


class BalanceCache:
    def __init__(self, ttl: float = BALANCE_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Any]] = {}

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

    def forget(self, external_id: str | None) -> None:
        """Drop one customer's entry, or all of them (None)."""
        if external_id is None:
            self._entries.clear()
        else:
            self._entries.pop(external_id, None)
