"""`billing-portal`: every command reads the same settings as the server."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from app.config import Settings

if TYPE_CHECKING:
    from app.composition import Services

T = TypeVar("T")


def _run(factory: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    from app.catalog.loader import CatalogError
    from app.db.migrations import DatabaseNotMigrated

    try:
        return asyncio.run(factory(Settings.from_env()))
    except (DatabaseNotMigrated, CatalogError) as exc:
        # A one-line answer naming what to fix, not a traceback.
        raise click.ClickException(str(exc)) from None


async def _check_ready(settings: Settings) -> None:
    from app.catalog.loader import load_catalog
    from app.db.engine import create_engine
    from app.db.migrations import ensure_migrated

    load_catalog(settings.catalog_path)
    engine = create_engine(settings.database_url, pgbouncer=settings.database_pgbouncer)
    try:
        await ensure_migrated(engine)
    finally:
        await engine.dispose()


async def _with_services(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    """Run `work` with the services the app uses, on one session (app.composition)."""
    from app.composition import Parts
    from app.db.migrations import ensure_migrated

    parts = Parts.build(settings)
    try:
        await ensure_migrated(parts.engine)
        async with parts.unit_of_work() as services:
            return await work(services)
    finally:
        await parts.close()


@click.group()
def main() -> None:
    """Billing Portal: a self-hosted billing portal in front of Stripe."""


@main.command()
def migrate() -> None:
    """Apply the database migrations (safe to run again)."""
    from app.db.migrations import upgrade

    settings = Settings.from_env()
    upgrade(settings.database_url)
    click.echo("Database is migrated.")


@main.command("create-admin")
@click.argument("email")
@click.option("--password", default=None, help="Generated and printed when omitted.")
def create_admin(email: str, password: str | None) -> None:
    """Create an admin login, or promote an existing user to admin."""
    from app.lib.errors import DomainError

    async def work(services: Services) -> tuple[Any, str | None]:
        return await services.accounts.ensure_admin(email, password)

    try:
        user, generated = _run(lambda s: _with_services(s, work))
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Admin {user.email} is ready.")
    if generated:
        click.echo(f"Password: {generated}")


@main.command("seed-demo")
def seed_demo() -> None:
    """Create the demo users and admin once; prints their logins."""
    from app.demo import seed

    async def work(services: Services) -> list[tuple[str, str, str]]:
        return await seed(services.session, services.parts.catalog)

    logins = _run(lambda s: _with_services(s, work))
    click.echo("Demo logins (email / password):")
    for role, email, password in logins:
        click.echo(f"  {role:<6} {email} / {password}")


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def _start_emulator(settings: Settings) -> subprocess.Popen[bytes] | None:
    if not settings.uses_stripe_emulator or settings.stripe_api_base:
        return None
    if _port_open("127.0.0.1", settings.stripe_emulator_port):
        click.echo(f"Stripe emulator already listening on port {settings.stripe_emulator_port}.")
        return None
    click.echo(
        f"No STRIPE_SECRET_KEY: starting the local Stripe emulator on port {settings.stripe_emulator_port}."
    )
    return subprocess.Popen(
        [sys.executable, "-m", "app.stripe_emulator"],
        env=os.environ.copy(),
        preexec_fn=_die_with_parent,
    )


def _die_with_parent() -> None:
    """On Linux the emulator gets SIGTERM when `serve` dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@main.command()
@click.option("--workers", default=1, show_default=True, help="Server processes.")
@click.option(
    "--emulator/--no-emulator", default=True, help="Start the Stripe emulator when no key is set."
)
def serve(workers: int, emulator: bool) -> None:
    """Serve the portal on HOST:PORT with granian."""
    from granian import Granian
    from granian.constants import Interfaces

    settings = Settings.from_env()
    # The app checks this too, but a worker failing to start buries the message in tracebacks.
    _run(_check_ready)
    child = _start_emulator(settings) if emulator else None
    click.echo(
        f"Billing Portal on {settings.public_url} (listening on {settings.host}:{settings.port})"
    )
    try:
        Granian(
            "app.main:app",
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            workers=workers,
            log_access=False,
        ).serve()
    finally:
        if child is not None:
            child.terminate()
            child.wait(timeout=10)


@main.command("stripe-emulator")
def stripe_emulator() -> None:
    """Run the local Stripe emulator (STRIPE_EMULATOR_PORT)."""
    from app.stripe_emulator.server import run

    run(Settings.from_env())


@main.command("create-api-key")
@click.argument("name")
def create_api_key(name: str) -> None:
    """Create an API key for the SaaS backend; the key is printed once, on the last line."""
    from app.lib.errors import DomainError

    async def work(services: Services) -> str:
        _key, raw = await services.api_keys.create(name)
        return raw

    try:
        raw = _run(lambda s: _with_services(s, work))
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"API key {name!r} created. It is shown only now; store it safely:")
    click.echo(raw)


def _stripe_emulator_hint(settings: Settings) -> str:
    if settings.uses_stripe_emulator:
        return f" (the emulator at {settings.effective_stripe_api_base}; is it running?)"
    return ""


@main.command("sync-catalog")
def sync_catalog() -> None:
    """Create or update Stripe products and prices from the catalog (matched by lookup_key)."""
    from app.billing.catalog_sync import CatalogSync
    from app.catalog.loader import load_catalog
    from app.stripe.gateway import StripeGateway, StripeGatewayError

    settings = Settings.from_env()
    sync = CatalogSync(StripeGateway.from_settings(settings), load_catalog(settings.catalog_path))
    try:
        report = asyncio.run(sync.run())
    except StripeGatewayError as exc:
        raise click.ClickException(exc.message + _stripe_emulator_hint(settings)) from None
    for line in report.lines():
        click.echo(line)
    click.echo("Catalog synced." if report.changed else "Stripe already matches the catalog.")


@main.command("stripe-check")
def stripe_check() -> None:
    """Check what Stripe's API shows of the go-live settings (portal, webhooks, payment
    methods, catalog); exits 1 when something required is missing."""
    from app.catalog.loader import load_catalog
    from app.stripe.gateway import API_VERSION, StripeGateway
    from app.stripe_sync import stripe_check as check

    settings = Settings.from_env()
    catalog = load_catalog(settings.catalog_path)
    expected = check.Expected(
        webhook_url=f"{settings.public_url}/webhooks/stripe",
        events=check.required_events(),
        api_version=API_VERSION,
        live_key=check.is_live_key(settings.effective_stripe_secret_key),
        emulator=settings.uses_stripe_emulator,
        webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET", "").strip() or None,
        catalog=catalog,
    )
    facts = asyncio.run(check.fetch(StripeGateway.from_settings(settings), catalog))
    lines = check.report(facts, expected)
    for line in lines:
        click.echo(str(line))
    click.echo(check.summary(lines))
    if check.failed(lines):
        sys.exit(1)


@main.command()
@click.option("--dry-run", is_flag=True, help="Report drift without repairing it.")
def reconcile(dry_run: bool) -> None:
    """Compare subscriptions, invoices, cards and billing details with Stripe's; repair (or
    report) drift."""
    from app.admin.daily_reconcile import ReconcileResult, reconcile_all
    from app.stripe.gateway import StripeGatewayError

    async def work(services: Services) -> ReconcileResult:
        return await reconcile_all(
            services.session, services.billing, services.mirror, repair=not dry_run
        )

    try:
        result = _run(lambda s: _with_services(s, work))
    except StripeGatewayError as exc:
        raise click.ClickException(exc.message) from None
    drift = result.drift
    for line in drift:
        click.echo(line)
    verb = "found" if dry_run else "repaired"
    click.echo(f"{len(drift)} difference(s) {verb}." if drift else "No drift: we match Stripe.")
    if result.errors:
        for line in result.errors:
            click.echo(f"error: {line}", err=True)
        raise click.ClickException(f"{len(result.errors)} customer(s) could not be reconciled.")


@main.command("outbox-retry")
def outbox_retry() -> None:
    """Put the Stripe outbox's dead messages (meter events) back to pending for the worker."""
    from app.stripe_sync.outbox import requeue_dead

    async def work(services: Services) -> int:
        return await requeue_dead(services.session)

    count = _run(lambda s: _with_services(s, work))
    click.echo(f"{count} dead message(s) requeued.")


@main.command("archive-usage")
@click.option(
    "--before",
    default=None,
    help="Archive events created before this UTC day (YYYY-MM-DD). "
    "Default: USAGE_RETENTION_MONTHS months before the start of this month.",
)
@click.option(
    "--to", "directory", default=None, help="Directory for the files (USAGE_ARCHIVE_DIR)."
)
def archive_usage(before: str | None, directory: str | None) -> None:
    """Move raw usage events out of the database into gzip files of JSON lines.

    Balances, usage charts and invoices do not change: they read the running totals and the
    daily roll-ups, which every event was added to when it was stored."""
    from app.metering.archive import archive_usage as archive
    from app.metering.archive import parse_before, retention_cutoff

    settings = Settings.from_env()
    try:
        cutoff = (
            parse_before(before) if before else retention_cutoff(settings.usage_retention_months)
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--before") from None
    if cutoff is None:
        raise click.UsageError("Give --before YYYY-MM-DD or set USAGE_RETENTION_MONTHS.")
    target = Path(directory).resolve() if directory else settings.usage_archive_dir
    assert target is not None

    async def work(services: Services) -> Any:
        return await archive(services.parts.sessions, cutoff, target)

    done = _run(lambda s: _with_services(s, work))
    click.echo(
        f"{done.events} usage event(s) created before {cutoff:%Y-%m-%d %H:%M} UTC archived"
        f" to {target} ({len(done.files)} file(s))."
    )


@main.command()
@click.option("--once", is_flag=True, help="One round, then exit.")
def worker(once: bool) -> None:
    """Drain the outboxes (Stripe meter events, emails) and retry failed webhook events."""
    from app.composition import Parts
    from app.db.migrations import ensure_migrated

    async def work(settings: Settings) -> int:
        parts = Parts.build(settings)
        try:
            await ensure_migrated(parts.engine)
            runner, mailer = parts.stripe_worker(), parts.notification_worker()
            if once:
                return await runner.run_once() + await mailer.run_once()
            click.echo("Stripe and email workers running (Ctrl+C to stop).")
            jobs = [runner.run_forever(), mailer.run_forever()]
            reconciler = parts.reconcile_worker()  # the daily reconcile at RECONCILE_AT
            if reconciler is not None:
                jobs.append(reconciler.run_forever())
            if settings.usage_retention_months > 0 and settings.usage_archive_dir is not None:
                from app.metering.archive import archive_every_day

                jobs.append(
                    archive_every_day(
                        parts.sessions, settings.usage_retention_months, settings.usage_archive_dir
                    )
                )
            await asyncio.gather(*jobs)
            return 0
        finally:
            await parts.close()

    done = _run(work)
    if once:
        click.echo(f"{done} item(s) handled.")
