"""SQLite state: Stripe objects as JSON, idempotency keys, the webhook queue and the clock."""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    customer TEXT,
    created INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_type_seq ON objects (type, seq);
CREATE INDEX IF NOT EXISTS objects_customer ON objects (customer);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    delivered_at REAL,
    last_status TEXT
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due
    ON webhook_deliveries (delivered_at, next_attempt_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


class Store:
    """One connection, used from the emulator's single event loop thread."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes of one request commit together or not at all (nested calls join)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    # objects

    def get(self, object_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT data FROM objects WHERE id = ?", (object_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        customer = obj.get("customer") or obj.get("_customer")
        if not isinstance(customer, str):
            customer = None
        if obj.get("object") == "customer":
            customer = obj["id"]
        self._db.execute(
            "INSERT INTO objects (id, type, customer, created, data) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET customer = excluded.customer, data = excluded.data",
            (obj["id"], obj["object"], customer, int(obj.get("created") or 0), json.dumps(obj)),
        )
        return obj

    def delete(self, object_id: str) -> None:
        self._db.execute("DELETE FROM objects WHERE id = ?", (object_id,))

    def all(self, type_: str, customer: str | None = None) -> list[dict[str, Any]]:
        """Objects of one type, newest first (as Stripe lists them)."""
        if customer is None:
            rows = self._db.execute(
                "SELECT data FROM objects WHERE type = ? ORDER BY seq DESC", (type_,)
            )
        else:
            rows = self._db.execute(
                "SELECT data FROM objects WHERE type = ? AND customer = ? ORDER BY seq DESC",
                (type_, customer),
            )
        return [json.loads(row[0]) for row in rows]

    # idempotency keys

    def idempotent_response(self, key: str) -> tuple[str, int, str] | None:
        row = self._db.execute(
            "SELECT fingerprint, status, body FROM idempotency_keys WHERE key = ?", (key,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def save_idempotent_response(
        self, key: str, fingerprint: str, status: int, body: str, now: float
    ) -> None:
        # Stripe keeps keys for 24 hours; so does the emulator.
        self._db.execute("DELETE FROM idempotency_keys WHERE created < ?", (now - 86400,))
        self._db.execute(
            "INSERT OR IGNORE INTO idempotency_keys (key, fingerprint, status, body, created) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, fingerprint, status, body, now),
        )

    # webhook queue

    def enqueue_delivery(self, event_id: str, at: float) -> None:
        self._db.execute(
            "INSERT INTO webhook_deliveries (event_id, next_attempt_at) VALUES (?, ?)",
            (event_id, at),
        )

    def due_deliveries(self, now: float, limit: int = 50) -> list[tuple[int, str, int]]:
        rows = self._db.execute(
            "SELECT id, event_id, attempts FROM webhook_deliveries "
            "WHERE delivered_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (now, limit),
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def next_delivery_at(self) -> float | None:
        row = self._db.execute(
            "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE delivered_at IS NULL"
        ).fetchone()
        return row[0] if row and row[0] is not None else None

    def mark_delivered(self, delivery_id: int, now: float, status: str) -> None:
        self._db.execute(
            "UPDATE webhook_deliveries SET delivered_at = ?, attempts = attempts + 1, "
            "last_status = ? WHERE id = ?",
            (now, status, delivery_id),
        )

    def mark_failed(self, delivery_id: int, retry_at: float, status: str) -> None:
        self._db.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?, "
            "last_status = ? WHERE id = ?",
            (retry_at, status, delivery_id),
        )

    def deliveries(self) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT id, event_id, attempts, next_attempt_at, delivered_at, last_status "
            "FROM webhook_deliveries ORDER BY id"
        )
        keys = ("id", "event_id", "attempts", "next_attempt_at", "delivered_at", "last_status")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # meta

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
