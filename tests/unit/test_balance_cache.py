"""The balance cache's misses: one read per customer at a time, never a stale one kept."""

from __future__ import annotations

import asyncio

import pytest

from app.metering.cache import BalanceCache


class Reads:
    """A read per call that returns only when the test releases it."""

    def __init__(self) -> None:
        self.started: list[asyncio.Future[str]] = []

    def read(self) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.started.append(future)
        return future

    async def until_started(self, count: int) -> None:
        while len(self.started) < count:
            await asyncio.sleep(0)


async def test_concurrent_misses_share_one_read_and_keep_its_value() -> None:
    cache, reads = BalanceCache(), Reads()
    waiters = [asyncio.ensure_future(cache.load("c", reads.read)) for _ in range(20)]
    await reads.until_started(1)
    reads.started[0].set_result("sheet")
    assert await asyncio.gather(*waiters) == ["sheet"] * 20
    assert len(reads.started) == 1
    assert cache.get("c") == "sheet"
    assert await cache.load("c", reads.read) == "sheet"  # served from the entry
    assert len(reads.started) == 1


async def test_a_read_overtaken_by_a_write_is_not_kept_and_later_requests_read_anew() -> None:
    cache, reads = BalanceCache(), Reads()
    before = asyncio.ensure_future(cache.load("c", reads.read))
    await reads.until_started(1)
    cache.drop({"c"})  # a batch touching the customer committed while the read ran
    after = asyncio.ensure_future(cache.load("c", reads.read))
    await reads.until_started(2)
    reads.started[0].set_result("old")
    reads.started[1].set_result("new")
    assert await before == "old"  # began before the write: either value is right for it
    assert await after == "new"
    assert cache.get("c") == "new"

    cache.forget(None)
    third = asyncio.ensure_future(cache.load("c", reads.read))
    await reads.until_started(3)
    cache.forget("c")
    reads.started[2].set_result("stale")
    assert await third == "stale"
    assert cache.get("c") is None


async def test_a_waiter_that_goes_away_leaves_the_read_to_the_others() -> None:
    cache, reads = BalanceCache(), Reads()
    leaving = asyncio.ensure_future(cache.load("c", reads.read))
    staying = asyncio.ensure_future(cache.load("c", reads.read))
    await reads.until_started(1)
    leaving.cancel()
    await asyncio.sleep(0)
    reads.started[0].set_result("sheet")
    assert await staying == "sheet"
    assert leaving.cancelled()


async def test_a_failed_read_fails_its_waiters_and_the_next_miss_reads_again() -> None:
    cache, reads = BalanceCache(), Reads()
    waiters = [asyncio.ensure_future(cache.load("c", reads.read)) for _ in range(3)]
    await reads.until_started(1)
    reads.started[0].set_exception(ConnectionError("lost"))
    for waiter in waiters:
        with pytest.raises(ConnectionError):
            await waiter
    nothing = asyncio.ensure_future(cache.load("c", reads.read))
    await reads.until_started(2)
    reads.started[1].set_result(None)  # no such customer: not kept
    assert await nothing is None
    assert cache.get("c") is None
