"""Real `billing-portal serve` processes for tests and benchmarks (no browser here).

`LiveServers(root).start(env, args)` migrates a fresh SQLite database in its own VAR_DIR
(or uses the DATABASE_URL given in env), optionally seeds the demo, starts `serve` in its own
process group on a free port and waits until /health answers. `LiveServer.cli(...)` runs the
CLI against the same database; `stop()` ends the whole process group.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.config import PROJECT_ROOT
from app.lib.passwords import CHEAP_HASHING_ENV
from tests.support import WEBHOOK_SECRET, free_port, wait_until

CLI = PROJECT_ROOT / ".venv" / "bin" / "billing-portal"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 60
# Settings that must not leak from the developer's shell into the test server.
SCRUBBED_ENV = (
    "DATABASE_URL",
    "SECRET_KEY",
    "PUBLIC_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_API_BASE",
    "STRIPE_EMULATOR_PORT",
    "REDIS_URL",
    "SMTP_URL",
    "CATALOG_PATH",
    "VAR_DIR",
    "HOST",
    "PORT",
)


class ServerFailed(RuntimeError):
    pass


@dataclass
class LiveServer:
    url: str
    port: int
    env: dict[str, str] = field(repr=False)
    var_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def cli(self, *args: str, timeout: float = 60) -> str:
        """Run `billing-portal ARGS` against this server's database; its stdout."""
        return run_cli(self.env, *args, timeout=timeout)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # serve ran in its own process group (granian workers, an emulator child): end them all.
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
        except ProcessLookupError:
            pass


def run_cli(env: Mapping[str, str], *args: str, timeout: float = 60) -> str:
    result = subprocess.run(
        [str(CLI), *args],
        env=dict(env),
        cwd=env.get("VAR_DIR"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise ServerFailed(
            f"billing-portal {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout


class LiveServers:
    """Starts `billing-portal serve` processes, one per distinct (env, args), stops them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: dict[str, LiveServer] = {}

    def start(
        self,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = ("--no-emulator",),
        *,
        seed: bool = True,
    ) -> LiveServer:
        key = json.dumps([sorted((env or {}).items()), list(args), seed])
        server = self.servers.get(key)
        if server is None:
            server = self._start(dict(env or {}), args, seed=seed)
            self.servers[key] = server
        elif server.process is None or server.process.poll() is not None:
            raise ServerFailed(f"the live server at {server.url} died:\n{server.log_tail()}")
        return server

    def _start(self, extra: dict[str, str], args: tuple[str, ...], *, seed: bool) -> LiveServer:
        if not CLI.exists():
            raise ServerFailed(f"{CLI} is missing: install the project (make install)")
        var_dir = self.root / f"server{len(self.servers)}"
        var_dir.mkdir(parents=True)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env.update(
            VAR_DIR=str(var_dir),
            DATABASE_URL=f"sqlite+aiosqlite:///{var_dir / 'billing.db'}",
            HOST="127.0.0.1",
            PORT=str(port),
            PUBLIC_URL=f"http://127.0.0.1:{port}",
            RUN_WORKER="0",
            SECRET_KEY="e2e-secret-key-" + "x" * 32,
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            # Never the developer's emulator on 12111; override to start one with `serve`.
            STRIPE_EMULATOR_PORT=str(free_port()),
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            # Browser tests sign up and pay at once; tests/e2e/test_account_recovery.py turns it on.
            REQUIRE_EMAIL_VERIFICATION="0",
        )
        # argon2 at its cheapest, as in the in-process tests (production's costs ~0.1 s a hash,
        # paid by seed-demo, each worker's start and every signup and login of a browser test);
        # tests/unit/test_passwords.py holds production to the strong parameters.
        env[CHEAP_HASHING_ENV] = "1"
        env.update(extra)
        port = int(env["PORT"])
        server = LiveServer(
            url=env["PUBLIC_URL"].rstrip("/"),
            port=port,
            env=env,
            var_dir=var_dir,
            log_path=var_dir / "server.log",
        )
        self._migrate(env, var_dir / "billing.db")
        if seed:
            run_cli(env, "seed-demo")
        with server.log_path.open("wb") as log:
            server.process = subprocess.Popen(
                [str(CLI), "serve", *args],
                env=env,
                cwd=var_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(lambda: _healthy(server), timeout=START_TIMEOUT, what=f"{server.url}/health")
        except Exception as exc:
            server.stop()
            raise ServerFailed(
                f"billing-portal serve did not come up ({exc}); its log:\n{server.log()}"
            ) from None
        except BaseException:  # Ctrl+C: no orphaned server
            server.stop()
            raise
        return server

    def _migrate(self, env: dict[str, str], database: Path) -> None:
        """`billing-portal migrate` for the first server on its own SQLite file; the next ones
        start from a copy of the database it made (the same schema, without a process start
        and the whole migration chain per server)."""
        if env["DATABASE_URL"] != f"sqlite+aiosqlite:///{database}":
            run_cli(env, "migrate")
            return
        template = self.root / "migrated.db"
        if template.exists():
            _copy_sqlite(template, database)
        else:
            run_cli(env, "migrate")
            _copy_sqlite(database, template)

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()


def record_usage(
    server: LiveServer, key: str, external_id: str, count: int, headers: Mapping[str, str] = {}
) -> None:
    """`count` events of `api_calls` for `external_id` in one batch request, all accepted."""
    tag = uuid.uuid4().hex[:8]
    events = [
        {"external_customer_id": external_id, "code": "api_calls", "transaction_id": f"{tag}-{n}"}
        for n in range(count)
    ]
    answer = httpx.post(
        f"{server.url}/api/v1/events/batch",
        headers={"Authorization": f"Bearer {key}", **headers},
        json={"events": events},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == count, answer.text


def _copy_sqlite(source: Path, target: Path) -> None:
    """SQLite's online backup: the whole database, whatever is still in its WAL file."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _healthy(server: LiveServer) -> bool:
    assert server.process is not None
    if server.process.poll() is not None:
        raise ServerFailed(f"serve exited with {server.process.returncode}")
    try:
        response = httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=1.0)
    except httpx.TransportError:
        return False
    return response.status_code == 200
