"""The SQLite side of app/db/changes.py (app/db/change_file.py): a process hears each
announced change once, in order; a half-written line waits; a file started afresh or removed
means everything changed."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.db import change_file, changes
from app.db.changes import API_KEYS, BALANCES, ChangeWatch, Gathered, announce, changes_file
from app.db.engine import create_engine

Heard = list[tuple[str, str | None]]
EVERYTHING = [(API_KEYS, None), (BALANCES, None)]


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[tuple[ChangeWatch, Heard, str]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    watch = ChangeWatch(engine)
    heard: Heard = []
    watch.on(API_KEYS, lambda subject: heard.append((API_KEYS, subject)))
    watch.on(BALANCES, lambda subject: heard.append((BALANCES, subject)))
    path = changes_file(engine.url)
    assert path == str(tmp_path / "b.db") + "-changes"
    await watch.start()
    yield watch, heard, path
    await watch.stop()
    await engine.dispose()


def _write_raw(path: str, data: bytes) -> None:
    """What a writer does, cut anywhere: lines at the end, then the counter bumped."""
    fd = os.open(path, os.O_RDWR)
    try:
        count, epoch = change_file.HEADER.unpack(os.pread(fd, change_file.HEADER.size, 0))
        os.pwrite(fd, data, os.fstat(fd).st_size)
        os.pwrite(fd, change_file.HEADER.pack(count + 1, epoch), 0)
    finally:
        os.close(fd)


async def test_each_change_is_heard_once(watched) -> None:
    watch, heard, _path = watched
    watch.poll()
    assert heard == []
    await announce(watch.engine, {(BALANCES, "cust\n1")})
    await announce(watch.engine, {(API_KEYS, "abc")})
    watch.poll()
    watch.poll()
    assert heard == [(BALANCES, "cust\n1"), (API_KEYS, "abc")]


async def test_a_half_written_line_waits_for_its_end(watched) -> None:
    watch, heard, path = watched
    _write_raw(path, b'["balances", "c1"]\n["balances", "c')
    watch.poll()
    assert heard == [(BALANCES, "c1")]
    _write_raw(path, b'2"]\n')
    watch.poll()
    assert heard == [(BALANCES, "c1"), (BALANCES, "c2")]


async def test_a_file_started_afresh_means_everything_changed(
    watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch, heard, _path = watched
    monkeypatch.setattr(change_file, "MAX_BYTES", 64)
    for n in range(4):
        await announce(watch.engine, {(API_KEYS, f"key-{n}")})
    watch.poll()
    assert heard[-2:] == EVERYTHING


async def test_a_removed_file_means_everything_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(change_file, "RECHECK_SECONDS", 0.01)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    watch = ChangeWatch(engine)
    heard: Heard = []
    watch.on(API_KEYS, lambda subject: heard.append((API_KEYS, subject)))
    await watch.start()
    try:
        os.remove(str(tmp_path / "b.db") + "-changes")
        deadline = time.monotonic() + 5
        while not heard:  # the watch's own check, off the request path
            assert time.monotonic() < deadline, "the removed file went unnoticed"
            await asyncio.sleep(0.01)  # ok: polling interval of a condition wait
        assert heard == [(API_KEYS, None)]
        heard.clear()
        await announce(engine, {(API_KEYS, "after")})
        watch.poll()
        assert heard == [(API_KEYS, "after")]
    finally:
        await watch.stop()
        await engine.dispose()


def _announcements(path: str) -> int:
    with open(path, "rb") as file:
        return int(change_file.HEADER.unpack(file.read(change_file.HEADER.size))[0])


async def test_gathered_usage_is_one_announcement_heard_by_others_not_by_its_own(
    watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch, heard, path = watched
    monkeypatch.setattr(changes, "_LINE_BYTES", 64)  # several lines, as a large batch makes
    mine, other = Gathered(watch.engine, BALANCES), Gathered(watch.engine, BALANCES)
    watch.ignore_from(mine.origin)
    before = _announcements(path)
    mine.add({"own"})
    customers = {f"cust-{n:02}" for n in range(12)} | {"cust-\u00e9"}
    other.add({c for c in customers if c != "cust-\u00e9"})
    other.add({"cust-00", "cust-\u00e9"})  # the next batch, before the first was announced
    assert _announcements(path) == before  # add() does no I/O
    expected = sorted((BALANCES, c) for c in customers)
    deadline = time.monotonic() + 5
    while sorted(heard) != expected:
        assert time.monotonic() < deadline, f"never heard {expected}, only {heard}"
        await asyncio.sleep(0.005)  # ok: polling interval of a condition wait
        watch.poll()
    # Each Gathered announced once (one append, this one's lines cut in several); the watch
    # ignored its own process's line.
    assert _announcements(path) - before == 2
    await mine.close()
    await other.close()
    watch.poll()
    assert sorted(heard) == expected
