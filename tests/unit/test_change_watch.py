"""The SQLite side of app/db/changes.py: a process hears each announced change once, in order;
a half-written line waits; a replaced or removed file means everything changed."""

from __future__ import annotations

import os
from pathlib import Path

from app.db.changes import API_KEYS, BALANCES, ChangeWatch, announce, changes_file
from app.db.engine import create_engine


def _watch(tmp_path: Path) -> tuple[ChangeWatch, list[tuple[str, str | None]], str]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    watch = ChangeWatch(engine)
    heard: list[tuple[str, str | None]] = []
    watch.on(API_KEYS, lambda subject: heard.append((API_KEYS, subject)))
    watch.on(BALANCES, lambda subject: heard.append((BALANCES, subject)))
    path = changes_file(engine.url)
    assert path == str(tmp_path / "b.db") + "-changes"
    return watch, heard, path


async def test_each_change_is_heard_once(tmp_path: Path) -> None:
    watch, heard, _path = _watch(tmp_path)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    watch.poll()
    assert heard == []
    await announce(engine, {(BALANCES, "cust\n1")})
    await announce(engine, {(API_KEYS, "abc")})
    watch.poll()
    watch.poll()
    assert heard == [(BALANCES, "cust\n1"), (API_KEYS, "abc")]


async def test_a_half_written_line_waits_for_its_end(tmp_path: Path) -> None:
    watch, heard, path = _watch(tmp_path)
    with open(path, "ab") as handle:
        handle.write(b'["balances", "c1"]\n["balances", "c')
    watch.poll()
    assert heard == [(BALANCES, "c1")]
    heard.clear()
    with open(path, "ab") as handle:
        handle.write(b'2"]\n')
    watch.poll()
    assert heard == [(BALANCES, "c2")]


async def test_a_replaced_or_removed_file_means_everything_changed(tmp_path: Path) -> None:
    watch, heard, path = _watch(tmp_path)
    Path(path).write_text('["api_keys", "a"]\n["api_keys", "b"]\n')
    watch.poll()
    heard.clear()
    fresh = path + ".new"
    Path(fresh).write_text("")
    os.replace(fresh, path)
    watch.poll()
    assert sorted(heard, key=str) == [(API_KEYS, None), (BALANCES, None)]
    heard.clear()
    os.remove(path)
    watch.poll()
    assert sorted(heard, key=str) == [(API_KEYS, None), (BALANCES, None)]
