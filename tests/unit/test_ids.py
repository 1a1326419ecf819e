"""Time-ordered public ids."""

from __future__ import annotations

import os
import uuid

from app.lib import ids
from app.lib.ids import uuid7, uuid7_batch


def test_ids_are_version_7_uuids_and_unique() -> None:
    made = [uuid7() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    for text in made[:100]:
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_ids_sort_by_creation_time(monkeypatch) -> None:
    clock = iter([1_700_000_000_000_000_000 + i * 1_000_000 for i in range(50)])
    monkeypatch.setattr(ids.time, "time_ns", lambda: next(clock))
    made = [uuid7() for _ in range(50)]
    assert made == sorted(made)


def test_a_forked_process_does_not_repeat_the_parent_sequence() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, uuid7().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    parent = uuid7()
    assert child[15:] != parent[15:]  # the random parts differ


def test_ids_made_in_a_batch_are_the_same_kind_and_unique() -> None:
    made = uuid7_batch(5_000)
    assert len(set(made)) == len(made)
    for text in made[:200]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, text)
    assert {text[:13] for text in made} <= {uuid7()[:13], made[0][:13]}  # the same millisecond
