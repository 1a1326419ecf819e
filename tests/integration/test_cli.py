"""`billing-portal` against a temp SQLite database: the real console script as a subprocess
where the script itself is the subject (migrate, serve, a login with a generated password),
elsewhere its click commands in this process (the same code, without a second of start-up)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.accounts.models import User
from app.catalog.models import Catalog
from app.cli import main
from app.config import PROJECT_ROOT
from app.db.engine import create_engine, create_session_factory
from app.db.migrations import head_revision, upgrade
from app.demo import DEMO_ADMIN, DEMO_USERS
from app.lib.passwords import CHEAP_HASHING_ENV
from app.main import create_app
from tests.conftest import csrf_token
from tests.support import WEBHOOK_SECRET, make_settings

CLI = PROJECT_ROOT / ".venv" / "bin" / "billing-portal"
# Variables that would point a command somewhere else than the temp directory.
_SCRUBBED = ("DATABASE_URL", "SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_API_BASE", "REDIS_URL")


class Cli:
    """Runs `billing-portal` with VAR_DIR and DATABASE_URL in a temp directory."""

    def __init__(self, root: Path) -> None:
        self.var_dir = root / "var"
        self.database_url = f"sqlite+aiosqlite:///{root / 'cli.db'}"
        self.env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        self.env.update(
            VAR_DIR=str(self.var_dir),
            DATABASE_URL=self.database_url,
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            LOG_LEVEL="WARNING",
        )
        self.env[CHEAP_HASHING_ENV] = "1"  # as tests/servers.py's processes
        self.cwd = root

    def script(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """The installed console script, in its own process."""
        return subprocess.run(
            [str(CLI), *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    async def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The same command in this process (on a thread: the commands run their own event
        loop); an exception click did not turn into an error message fails the test, as a
        traceback on the script's stderr would."""
        environ = {k: self.env.get(k) for k in {*os.environ, *self.env}}
        result = await asyncio.to_thread(CliRunner(env=environ).invoke, main, list(args))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

    def script_ok(self, *args: str) -> str:
        result = self.script(*args)
        assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stderr}"
        return result.stdout

    async def ok(self, *args: str) -> str:
        result = await self(*args)
        assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stderr}"
        return result.stdout


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: install the project (make install)")
    return Cli(tmp_path)


@pytest.fixture
async def migrated(cli: Cli) -> Cli:
    # In-process: faster than the subprocess, which test_migrate_is_idempotent covers.
    await asyncio.to_thread(upgrade, cli.database_url)
    return cli


async def _users(cli: Cli) -> dict[str, bool]:
    """email → is_admin, read straight from the database the commands wrote to."""
    engine = create_engine(cli.database_url)
    try:
        async with create_session_factory(engine)() as session:
            rows = await session.execute(select(User.email, User.is_admin))
            return {email: is_admin for email, is_admin in rows}
    finally:
        await engine.dispose()


async def _can_log_in(cli: Cli, catalog: Catalog, email: str, password: str) -> bool:
    """Log in over HTTP on an app built with the same settings the commands used."""
    app = create_app(make_settings(cli.var_dir, cli.database_url), catalog)
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        token = await csrf_token(client)
        response = await client.post(
            "/login",
            data={"email": email, "password": password, "_csrf_token": token},
            follow_redirects=False,
        )
    return response.status_code == 303 and response.headers["location"] == "/billing"


async def _revision(cli: Cli) -> str | None:
    from app.db.migrations import current_revision

    engine = create_engine(cli.database_url)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


async def test_migrate_is_idempotent(cli: Cli):
    assert "Database is migrated." in cli.script_ok("migrate")
    assert await _revision(cli) == head_revision()
    assert "Database is migrated." in cli.script_ok("migrate")
    assert await _revision(cli) == head_revision()


@pytest.mark.parametrize(
    "args",
    [("create-admin", "a@b.co"), ("seed-demo",), ("serve", "--no-emulator")],
    ids=["create-admin", "seed-demo", "serve"],
)
async def test_commands_on_an_unmigrated_database_say_to_migrate(cli: Cli, args: tuple[str, ...]):
    cli.env["PORT"] = "1"  # `serve` must stop before listening anywhere
    # `serve` as the script: in this process, a check that failed to stop it would serve here.
    result = cli.script(*args) if args[0] == "serve" else await cli(*args)
    assert result.returncode != 0
    assert "Run: billing-portal migrate" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args", [("seed-demo",), ("serve", "--no-emulator")], ids=["seed-demo", "serve"]
)
async def test_a_missing_catalog_is_named_without_a_traceback(migrated: Cli, args):
    migrated.env.update(CATALOG_PATH=str(migrated.cwd / "missing.toml"), PORT="1")
    result = migrated.script(*args) if args[0] == "serve" else await migrated(*args)
    assert result.returncode != 0
    assert "missing.toml" in result.stderr and "set CATALOG_PATH" in result.stderr
    assert "Traceback" not in result.stderr


async def test_create_admin_prints_a_generated_password_that_logs_in(migrated: Cli, catalog):
    out = migrated.script_ok("create-admin", "A@B.co")
    assert "Admin a@b.co is ready." in out
    match = re.search(r"^Password: (\S+)$", out, re.MULTILINE)
    assert match, out
    password = match.group(1)
    assert len(password) >= 12
    assert await _users(migrated) == {"a@b.co": True}
    assert await _can_log_in(migrated, catalog, "a@b.co", password)
    assert not await _can_log_in(migrated, catalog, "a@b.co", password + "x")


async def test_create_admin_with_a_password_prints_no_password(migrated: Cli, catalog):
    out = await migrated.ok("create-admin", "root@example.com", "--password", "a long admin pw")
    assert "Admin root@example.com is ready." in out
    assert "Password:" not in out
    assert await _can_log_in(migrated, catalog, "root@example.com", "a long admin pw")


async def test_create_admin_promotes_an_existing_user(migrated: Cli, catalog):
    await migrated.ok("seed-demo")
    _role, email, _password, _name = DEMO_USERS[0]
    assert (await _users(migrated))[email] is False
    await migrated.ok("create-admin", email, "--password", "new admin password")
    assert (await _users(migrated))[email] is True
    assert await _can_log_in(migrated, catalog, email, "new admin password")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create-admin", "not-an-email"), "Enter a valid email address"),
        (
            ("create-admin", "x@y.co", "--password", "short"),
            "Password must be at least 8 characters.",
        ),
    ],
    ids=["bad-email", "short-password"],
)
async def test_create_admin_refuses_bad_input_clearly(migrated: Cli, args, message):
    result = await migrated(*args)
    assert result.returncode != 0
    assert f"Error: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert await _users(migrated) == {}


async def test_seed_demo_is_idempotent_and_prints_the_logins(migrated: Cli, catalog):
    first = await migrated.ok("seed-demo")
    second = await migrated.ok("seed-demo")
    assert first == second
    expected = [(email, pw) for _r, email, pw, _n in DEMO_USERS] + [DEMO_ADMIN[1:]]
    for email, password in expected:
        assert f"{email} / {password}" in first
    users = await _users(migrated)
    assert users == {email: email == DEMO_ADMIN[1] for email, _ in expected}
    assert await _can_log_in(migrated, catalog, *expected[0])
    assert await _can_log_in(migrated, catalog, *expected[-1])


async def test_outbox_retry_requeues_dead_stripe_messages(migrated: Cli):
    from datetime import UTC, datetime

    from app.metering.outbox import StripeOutboxMessage

    engine = create_engine(migrated.database_url)
    try:
        async with create_session_factory(engine)() as session:
            for key, status in (("dead-1", "dead"), ("sent-1", "sent")):
                session.add(
                    StripeOutboxMessage(
                        kind="meter_event",
                        idempotency_key=key,
                        payload={},
                        status=status,
                        attempts=3,
                        next_attempt_at=datetime(2030, 1, 1, tzinfo=UTC),
                    )
                )
            await session.commit()
        assert "1 dead message(s) requeued." in await migrated.ok("outbox-retry")
        async with create_session_factory(engine)() as session:
            rows = await session.execute(
                select(StripeOutboxMessage.idempotency_key, StripeOutboxMessage.status)
            )
            assert dict(rows.all()) == {"dead-1": "pending", "sent-1": "sent"}
    finally:
        await engine.dispose()
