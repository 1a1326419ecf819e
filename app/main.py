"""create_app(): the only Litestar(...) call. `app` is for ASGI servers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from advanced_alchemy.extensions.litestar import (
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
    SQLAlchemyPlugin,
)
from litestar import Litestar, MediaType, Router, get
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging.config import StructLoggingConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.flash import FlashConfig, FlashPlugin
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin
from litestar.static_files import create_static_files_router
from litestar.stores.base import Store
from litestar.stores.file import FileStore
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.account_controllers import AccountController, RecoveryController
from app.accounts.auth import build_session_auth
from app.accounts.controllers import AuthController
from app.accounts.guards import TwoFactorRequired
from app.accounts.throttle import LOGIN_WINDOW, LoginThrottle
from app.accounts.two_factor_controllers import (
    SecondStepController,
    TwoFactorSettingsController,
    two_factor_required,
)
from app.admin.controllers import AdminController
from app.admin.report_controllers import UsageReportController
from app.apikeys.service import KEY_CACHE
from app.apikeys.throttle import WINDOW_SECONDS, KeyFailures
from app.billing.action_controllers import BillingActionsController
from app.billing.auto_top_up_controllers import AutoTopUpController
from app.billing.controllers import (
    BillingController,
    PortalApiController,
    PortalController,
)
from app.billing.details_controllers import BillingDetailsController
from app.billing.guest_pages import TryController
from app.billing.live_poll import LivePoll
from app.billing.page_cache import PageCache
from app.billing.usage_export_controllers import UsageExportController
from app.catalog.controllers import PlansApiController
from app.catalog.models import Catalog
from app.composition import Parts, web_dependencies
from app.config import Settings
from app.customers.controllers import CustomerApiController
from app.db.changes import API_KEYS, BALANCES, ChangeWatch
from app.db.engine import AppSession
from app.db.migrations import ensure_migrated
from app.lib.attempts import AttemptCounter, MemoryAttempts, RedisAttempts
from app.metering.controllers import UsageApiController
from app.metering.guest_controllers import GuestApiController
from app.notifications.admin_controllers import OutboxAdminController
from app.notifications.controllers import NotificationSettingsController
from app.organizations.api_controllers import MembersApiController
from app.organizations.controllers import (
    InvitationController,
    OrganizationSwitchController,
    TeamController,
)
from app.privacy.controllers import AccountDataController
from app.stripe_sync.controllers import StripeWebhookController
from app.web.errors import exception_handlers
from app.web.fast_paths import LocalFileStore, PageRequest, tune_collector
from app.web.security_headers import page_headers
from app.web.site_files import NotFoundPages, brand_stylesheet, favicon, not_found
from app.web.templating import STATIC_DIR, template_config


@get("/health", opt={"public": True}, media_type=MediaType.JSON, include_in_schema=False)
async def health() -> dict[str, str]:
    return {"status": "ok"}


def _redis_client(settings: Settings) -> Any:
    """One client (and connection pool) per app for everything shared through Redis."""
    from redis.asyncio import Redis

    assert settings.redis_url
    return Redis.from_url(settings.redis_url)


def _stores(settings: Settings, redis: Any) -> dict[str, Store]:
    if redis is not None:
        from litestar.stores.redis import RedisStore

        root = RedisStore(redis=redis, namespace="billing_portal", handle_client_shutdown=True)
        return {
            "sessions": root.with_namespace("sessions"),
            "portal_tokens": root.with_namespace("portal"),
        }
    return {
        "sessions": LocalFileStore(settings.var_dir / "sessions", create_directories=True),
        # Used portal links: files, so every process on this host agrees a link was used.
        "portal_tokens": FileStore(settings.var_dir / "portal_tokens", create_directories=True),
    }


def _login_attempts(redis: Any) -> AttemptCounter:
    if redis is not None:
        return RedisAttempts(redis, "billing_portal:attempts:", LOGIN_WINDOW)
    return MemoryAttempts(LOGIN_WINDOW)


def _api_key_failures(redis: Any, settings: Settings) -> KeyFailures:
    counter: AttemptCounter = (
        RedisAttempts(redis, "billing_portal:attempts:", WINDOW_SECONDS)
        if redis is not None
        else MemoryAttempts(WINDOW_SECONDS)
    )
    return KeyFailures(counter, settings.api_key_failure_limit, settings.trusted_proxies)


def create_app(
    settings: Settings | None = None, catalog: Catalog | None = None, *, owns_process: bool = False
) -> Litestar:
    """`owns_process`: this app is all its process serves (an ASGI server's worker), so it may
    tune the process, such as the garbage collector."""
    settings = settings or Settings.from_env()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    parts = Parts.build(settings, catalog)
    engine, writer = parts.engine, parts.writer
    alchemy = SQLAlchemyAsyncConfig(
        engine_instance=engine,
        session_config=AsyncSessionConfig(expire_on_commit=False, sync_session_class=AppSession),
        before_send_handler=None,
        set_default_exception_handler=False,
        create_all=False,
    )

    def request_db_session(connection: ASGIConnection[Any, Any, Any, Any]) -> AsyncSession:
        return alchemy.provide_session(connection.app.state, connection.scope)

    templates = template_config(settings)
    session_auth = build_session_auth(settings, request_db_session)
    redis = _redis_client(settings) if settings.redis_url else None
    login_throttle = LoginThrottle(
        _login_attempts(redis), settings.login_rate_limit, settings.trusted_proxies
    )
    # Revocations, plan changes and grants committed by any process empty these caches at once.
    changes = ChangeWatch(engine, listen_url=settings.database_listen_url)
    changes.on(API_KEYS, KEY_CACHE.forget)
    changes.on(BALANCES, writer.balances.forget)
    changes.ignore_from(writer.usage_changes.origin)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await ensure_migrated(engine)
        await changes.start()
        # Without RUN_WORKER, `billing-portal worker` runs them.
        workers = parts.background_workers() if settings.run_worker else []
        for worker in workers:
            worker.start()
        if owns_process:
            tune_collector()
        try:
            yield
        finally:
            for worker in reversed(workers):
                await worker.stop()
            await changes.stop()
            await parts.close()

    def provide_login_throttle() -> LoginThrottle:
        return login_throttle

    log_level = logging.getLevelNamesMapping().get(settings.log_level, logging.INFO)
    logging.getLogger().setLevel(log_level)
    logging_config = StructlogConfig(
        structlog_logging_config=StructLoggingConfig(
            log_exceptions="never",
            wrapper_class=structlog.make_filtering_bound_logger(log_level),
        ),
        # Request/response logging would write form bodies (passwords) to the log.
        enable_middleware_logging=False,
    )
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    security_headers = page_headers(settings.public_url, settings.brand.logo_origin)

    application = Litestar(
        route_handlers=[
            # Browser pages and their redirects carry the security headers (resolved once at
            # start-up; error pages: app.web.errors); the API's answers do not pay for them.
            Router(
                path="/",
                response_headers=security_headers,
                route_handlers=[
                    AuthController,
                    TryController,
                    RecoveryController,
                    AccountController,
                    SecondStepController,
                    TwoFactorSettingsController,
                    AccountDataController,
                    BillingController,
                    PortalController,
                    BillingActionsController,
                    AutoTopUpController,
                    BillingDetailsController,
                    UsageExportController,
                    AdminController,
                    UsageReportController,
                    NotificationSettingsController,
                    TeamController,
                    OrganizationSwitchController,
                    InvitationController,
                    OutboxAdminController,
                    # Paths no route answers (a 404 page with the user's nav): NotFoundPages.
                    not_found,
                ],
            ),
            favicon,
            brand_stylesheet,
            PortalApiController,
            StripeWebhookController,
            CustomerApiController,
            GuestApiController,
            MembersApiController,
            UsageApiController,
            PlansApiController,
            health,
            create_static_files_router(
                path="/static", directories=[STATIC_DIR], opt={"public": True}
            ),
        ],
        dependencies={
            **web_dependencies(parts),
            "login_throttle": Provide(provide_login_throttle, sync_to_thread=False),
        },
        plugins=[
            SQLAlchemyPlugin(config=alchemy),
            HTMXPlugin(),
            FlashPlugin(config=FlashConfig(template_config=templates)),
            StructlogPlugin(config=logging_config),
        ],
        on_app_init=[session_auth.on_app_init],
        request_class=PageRequest,
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_secure=settings.secure_cookies,
            cookie_samesite="lax",
            # Machine endpoints: no forms, so no token cookie (a health check needs no cookie).
            exclude=["/api/", "/webhooks/", "/portal/", "^/health$"],
        ),
        template_config=templates,
        stores=_stores(settings, redis),
        exception_handlers={
            **exception_handlers(),
            TwoFactorRequired: two_factor_required,
        },
        openapi_config=OpenAPIConfig(
            title="Billing Portal API",
            version="1",
            path="/schema",
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key from `billing-portal create-api-key NAME`.",
                    )
                }
            ),
            # JSON only: the HTML renderers load scripts from a CDN, and this product runs offline.
            render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"])],
        ),
        lifespan=[lifespan],
        state=State(
            {
                "settings": settings,
                "catalog": parts.catalog,
                "engine": engine,
                "usage_writer": writer,
                # For error pages, which no route handler answers (app.web.errors).
                "page_headers": security_headers,
                "changes": changes,
                "api_key_failures": _api_key_failures(redis, settings),
                "stripe_gateway": parts.gateway,
            }
        ),
        debug=False,
    )
    NotFoundPages.install(application)
    # Both answer before routing, after the same session checks as the app's.
    sessions: dict[str, Any] = {
        "sessions": application.stores.get("sessions"),
        "session_cookie": session_auth.session_backend_config.key,
        "csrf_cookie": application.csrf_config.cookie_name if application.csrf_config else "",
        "session_max_age": settings.session_max_age,
    }
    # Customer pages loaded again with nothing changed (app/billing/page_cache.py).
    PageCache.install(application, changes=changes, **sessions)
    # The dashboard's unchanged live-usage poll (app/billing/live_poll.py).
    LivePoll.install(
        application,
        **sessions,
        usage=parts.usage_api,
        work=writer.work,
        catalog=parts.catalog,
        headers=security_headers,
    )
    return application


app: Litestar  # declared for type checkers; built by __getattr__ below


def _lazy_app() -> Litestar:
    return create_app(owns_process=True)


def __getattr__(name: str) -> Any:
    # `app.main:app` for ASGI servers, built on first access so importing this module is cheap.
    if name == "app":
        global app
        app = _lazy_app()
        return app
    raise AttributeError(name)
