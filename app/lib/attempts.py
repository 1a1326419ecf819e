"""Counting attempts per key in a fixed window: in this process, or shared through Redis."""

from __future__ import annotations

import time
from typing import Any, Protocol


class AttemptCounter(Protocol):
    window: int

    async def count(self, key: str) -> tuple[int, int]:
        """(attempts in the current window, seconds until it ends)."""
        ...

    async def add(self, key: str) -> tuple[int, int]:
        """Count one more attempt; the window starts at a key's first attempt."""
        ...

    async def clear(self, key: str) -> None: ...


class MemoryAttempts:
    """For one process (no REDIS_URL): several processes each count on their own."""

    MAX_KEYS = 100_000

    def __init__(self, window: int) -> None:
        self.window = window
        self._counts: dict[str, tuple[int, float]] = {}

    def _current(self, key: str, now: float) -> tuple[int, float]:
        count, ends = self._counts.get(key, (0, 0.0))
        return (count, ends) if ends > now else (0, now + self.window)

    async def count(self, key: str) -> tuple[int, int]:
        now = time.monotonic()
        count, ends = self._current(key, now)
        return count, max(1, round(ends - now))

    async def add(self, key: str) -> tuple[int, int]:
        now = time.monotonic()
        if len(self._counts) >= self.MAX_KEYS:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        count, ends = self._current(key, now)
        self._counts[key] = (count + 1, ends)
        return count + 1, max(1, round(ends - now))

    async def clear(self, key: str) -> None:
        self._counts.pop(key, None)


class RedisAttempts:
    """Shared by every process using the same Redis (`redis.asyncio.Redis`)."""

    def __init__(self, client: Any, prefix: str, window: int) -> None:
        self.client = client
        self.prefix = prefix
        self.window = window

    async def count(self, key: str) -> tuple[int, int]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.prefix + key)
            pipe.ttl(self.prefix + key)
            value, ttl = await pipe.execute()
        return int(value or 0), ttl if ttl and ttl > 0 else self.window

    async def add(self, key: str) -> tuple[int, int]:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(self.prefix + key)
            pipe.expire(self.prefix + key, self.window, nx=True)
            pipe.ttl(self.prefix + key)
            count, _, ttl = await pipe.execute()
        return int(count), ttl if ttl and ttl > 0 else self.window

    async def clear(self, key: str) -> None:
        await self.client.delete(self.prefix + key)
