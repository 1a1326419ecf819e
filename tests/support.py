"""Helpers shared by the test suites: settings, free ports, waiting on conditions."""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from app.config import PROJECT_ROOT, Settings

T = TypeVar("T")
WEBHOOK_SECRET = "whsec_test_secret_for_the_suite"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(var_dir: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "var_dir": var_dir,
        "database_url": database_url,
        "secret_key": "test-secret-key-" + "x" * 32,
        "public_url": "http://testserver.local",
        "host": "127.0.0.1",
        "port": 8000,
        "stripe_secret_key": None,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": None,
        "stripe_emulator_port": 12111,
        "catalog_path": PROJECT_ROOT / "catalog.toml",
        "redis_url": None,
        "run_worker": False,
        "smtp_url": None,
        "demo_mode": True,
        "log_level": "WARNING",
        # The suite's users pay right after signing up; tests/integration/accounts turn it on.
        "require_email_verification": False,
    }
    values.update(overrides)
    return Settings(**values)


def wait_until(check: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll `check` until it returns a truthy value; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)  # ok: polling interval of a condition wait, not a fixed wait
        delay = min(delay * 2, 0.2)


def port_answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def configured_database_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL") or None


@contextmanager
def unreflected_expression_indexes() -> Iterator[None]:
    """SQLite's reflection cannot read expression indexes (`lower(email)`) and warns that it
    skips them: silence exactly those warnings where a test reflects or compares tables."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        yield


class Peer:
    """An ASGI app as reached from `peer` (a test client's own address is not an IP)."""

    def __init__(self, app: Any, peer: str) -> None:
        self.app = app
        self.peer = peer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": (self.peer, 40000)}
        await self.app(scope, receive, send)
