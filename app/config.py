"""Settings read from the environment; every variable is documented in the README."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, time
from pathlib import Path
from urllib.parse import urlparse

from app.lib.branding import Brand
from app.lib.clients import Network, parse_networks
from app.lib.schedule import parse_time_of_day

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _persisted_secret(path: Path, make: Callable[[], str]) -> str:
    """Return the secret stored at `path`, creating it once (0600) when missing."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    # O_EXCL: two processes starting together agree on one secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def _address_collection(value: str | None) -> str | None:
    """CHECKOUT_COLLECT_BILLING_ADDRESS: Stripe's `auto` or `required`; empty, off or false
    leaves it to Stripe's default (not asked)."""
    value = (value or "").strip().lower()
    if value in ("", "off", "false", "0", "no"):
        return None
    if value not in ("auto", "required"):
        raise ValueError("CHECKOUT_COLLECT_BILLING_ADDRESS must be auto, required or off")
    return value


def _bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    database_url: str
    secret_key: str
    public_url: str
    host: str
    port: int
    stripe_secret_key: str | None
    stripe_webhook_secret: str
    stripe_api_base: str | None
    stripe_emulator_port: int
    catalog_path: Path
    redis_url: str | None
    run_worker: bool
    smtp_url: str | None
    demo_mode: bool
    log_level: str
    session_max_age: int = 14 * 24 * 3600
    # Failed logins per account and address in 15 minutes (app/accounts/throttle.py).
    login_rate_limit: int = 10
    # Proxies whose X-Forwarded-For is believed (app/web/clients.py); none by default.
    trusted_proxies: tuple[Network, ...] = ()
    # Failed API key lookups per client address in a minute (app/apikeys/throttle.py).
    api_key_failure_limit: int = 30
    # The signing secret of the thin (v2) events' destination; the webhook's when unset.
    stripe_thin_webhook_secret: str | None = None
    # Admins must have two-factor login on before any admin page works (docs/accounts.md).
    require_admin_2fa: bool = False
    # Paid Checkouts and plan changes wait until the user confirmed their email (docs/accounts.md).
    require_email_verification: bool = True
    # What Checkout collects and applies (docs/billing-details.md): Stripe's
    # billing_address_collection ("auto" or "required"; None: not asked), tax ID collection,
    # promotion codes, and Stripe Tax (automatic_tax, also on plan changes and their previews).
    checkout_collect_billing_address: str | None = None
    checkout_collect_tax_id: bool = False
    checkout_allow_promotion_codes: bool = False
    stripe_automatic_tax: bool = False
    # PostgreSQL behind PgBouncer in transaction mode: no prepared statements kept on a server
    # connection (asyncpg's and SQLAlchemy's statement caches off), and LISTEN on
    # `database_listen_url`, a direct (or session-mode) connection (docs/operations.md).
    database_pgbouncer: bool = False
    database_listen_url: str | None = None
    # Raw usage events older than this many months are archived (0: kept forever), into
    # `usage_archive_dir` (VAR_DIR/archive when unset): app/metering/archive.py.
    usage_retention_months: int = 0
    usage_archive_dir: Path | None = None
    # The daily reconcile's time of day, UTC (None: off): app/admin/daily_reconcile.py.
    reconcile_at: time | None = time(2, 0, tzinfo=UTC)
    # BRAND_NAME, BRAND_LOGO_URL, BRAND_COLOR, BRAND_SUPPORT_EMAIL (app/lib/branding.py).
    brand: Brand = field(default_factory=Brand)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def secure_cookies(self) -> bool:
        return urlparse(self.public_url).scheme == "https"

    @property
    def uses_stripe_emulator(self) -> bool:
        return self.stripe_secret_key is None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def effective_stripe_secret_key(self) -> str:
        # The emulator accepts any test-mode key; the SDK needs one shaped like Stripe's.
        return self.stripe_secret_key or "sk_test_emulator"

    @property
    def effective_stripe_api_base(self) -> str | None:
        if self.stripe_api_base:
            return self.stripe_api_base.rstrip("/")
        if self.uses_stripe_emulator:
            return f"http://127.0.0.1:{self.stripe_emulator_port}"
        return None

    @classmethod
    def from_env(cls) -> Settings:
        var_dir = Path(_env("VAR_DIR", str(PROJECT_ROOT / "var")) or "var").resolve()
        host = _env("HOST", "127.0.0.1") or "127.0.0.1"
        port = int(_env("PORT", "8000") or 8000)
        database_url = _env("DATABASE_URL") or f"sqlite+aiosqlite:///{var_dir / 'billing.db'}"
        secret_key = _env("SECRET_KEY") or _persisted_secret(
            var_dir / "secret_key", lambda: secrets.token_urlsafe(48)
        )
        webhook_secret = _env("STRIPE_WEBHOOK_SECRET") or _persisted_secret(
            var_dir / "stripe_webhook_secret", lambda: "whsec_" + secrets.token_hex(24)
        )
        public_url = (_env("PUBLIC_URL") or f"http://{host}:{port}").rstrip("/")
        return cls(
            var_dir=var_dir,
            database_url=database_url,
            secret_key=secret_key,
            public_url=public_url,
            host=host,
            port=port,
            stripe_secret_key=_env("STRIPE_SECRET_KEY"),
            stripe_webhook_secret=webhook_secret,
            stripe_api_base=_env("STRIPE_API_BASE"),
            stripe_emulator_port=int(_env("STRIPE_EMULATOR_PORT", "12111") or 12111),
            catalog_path=Path(
                _env("CATALOG_PATH", str(PROJECT_ROOT / "catalog.toml")) or "catalog.toml"
            ),
            redis_url=_env("REDIS_URL"),
            run_worker=_bool("RUN_WORKER", True),
            smtp_url=_env("SMTP_URL"),
            demo_mode=_bool("DEMO_MODE", True),
            log_level=(_env("LOG_LEVEL", "INFO") or "INFO").upper(),
            trusted_proxies=parse_networks(_env("TRUSTED_PROXIES")),
            login_rate_limit=int(_env("LOGIN_RATE_LIMIT", "10") or 10),
            api_key_failure_limit=int(_env("API_KEY_FAILURE_LIMIT", "30") or 30),
            stripe_thin_webhook_secret=_env("STRIPE_THIN_WEBHOOK_SECRET"),
            database_pgbouncer=_bool("DATABASE_PGBOUNCER", False),
            database_listen_url=_env("DATABASE_LISTEN_URL"),
            usage_retention_months=int(_env("USAGE_RETENTION_MONTHS", "0") or 0),
            usage_archive_dir=Path(_env("USAGE_ARCHIVE_DIR") or var_dir / "archive").resolve(),
            reconcile_at=parse_time_of_day(
                _env("RECONCILE_AT"), time(2, 0, tzinfo=UTC), "RECONCILE_AT"
            ),
            require_admin_2fa=_bool("REQUIRE_ADMIN_2FA", False),
            require_email_verification=_bool("REQUIRE_EMAIL_VERIFICATION", True),
            checkout_collect_billing_address=_address_collection(
                _env("CHECKOUT_COLLECT_BILLING_ADDRESS")
            ),
            checkout_collect_tax_id=_bool("CHECKOUT_COLLECT_TAX_ID", False),
            checkout_allow_promotion_codes=_bool("CHECKOUT_ALLOW_PROMOTION_CODES", False),
            stripe_automatic_tax=_bool("STRIPE_AUTOMATIC_TAX", False),
            brand=Brand.from_env(),
        )
