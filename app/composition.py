"""The composition root: what one process holds, and the services built on a database session.

`Parts` are built once per process (settings, catalog, engines, the usage writer, the Stripe
gateway). `Services` builds the domain services on one session, each once, through the
domains' `deps.provide_*` functions. The web app (`web_dependencies`), the Stripe and
notification workers and the CLI all get their services here, so a service is wired the same
way wherever it runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.accounts import deps as accounts
from app.accounts.flows import AccountFlows
from app.accounts.service import AccountService
from app.accounts.two_factor import TwoFactorService
from app.accounts.user_sessions import SessionRegistry
from app.admin import deps as admin
from app.admin.daily_reconcile import ReconcileWorker
from app.admin.service import AdminService
from app.admin.usage_reports import UsageReports
from app.apikeys import deps as apikeys
from app.apikeys.service import ApiKeyService
from app.billing import deps as billing
from app.billing.auto_top_up_settings import AutoTopUpSettings
from app.billing.controllers import portal_store
from app.billing.details import BillingDetailsService
from app.billing.guest_pages import GuestPages
from app.billing.mirror import StripeMirror
from app.billing.plan_change import PlanChangeService
from app.billing.service import BillingService
from app.billing.usage_export import UsageExport
from app.billing.views import BillingPages
from app.catalog.loader import load_catalog
from app.catalog.models import Catalog
from app.config import Settings
from app.customers import deps as customers
from app.customers.service import CustomerService
from app.db.engine import create_engine, create_session_factory
from app.metering import deps as metering
from app.metering.guests import GuestService
from app.metering.service import MeteringService, UsageApi
from app.metering.writer import UsageWriter
from app.notifications import deps as notifications
from app.notifications.sender import sender_from_settings
from app.notifications.service import NotificationService
from app.notifications.worker import NotificationWorker
from app.organizations import deps as organizations
from app.organizations.service import OrganizationService
from app.privacy import deps as privacy
from app.privacy.deletion import AccountDeletion
from app.privacy.export import DataExport
from app.stripe.gateway import StripeGateway
from app.stripe_sync import deps as stripe_sync
from app.stripe_sync.auto_top_up import AutoTopUps
from app.stripe_sync.repository import StripeEventRepository
from app.stripe_sync.service import StripeEventService
from app.stripe_sync.worker import StripeWorker


class BackgroundWorker(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Parts:
    """What a process holds for its lifetime."""

    settings: Settings
    catalog: Catalog
    engine: AsyncEngine
    # The writer has its own pool: requests wait on it while holding theirs, so sharing one
    # pool could starve it.
    writer_engine: AsyncEngine
    writer: UsageWriter
    gateway: StripeGateway
    usage_api: UsageApi
    sessions: async_sessionmaker[AsyncSession] = field(repr=False)

    @classmethod
    def build(cls, settings: Settings, catalog: Catalog | None = None) -> Parts:
        catalog = catalog or load_catalog(settings.catalog_path)
        engine = create_engine(settings.database_url, pgbouncer=settings.database_pgbouncer)
        # No ping on checkout: the writer's batches are few round trips each, and a dropped
        # connection fails its batch, which is rolled back and run again on a fresh one. Its
        # statements find rows by key: planned once per connection.
        writer_engine = create_engine(
            settings.database_url,
            pgbouncer=settings.database_pgbouncer,
            generic_plans=True,
            pool_pre_ping=False,
        )
        writer = UsageWriter(
            writer_engine, catalog, upgrade_url=f"{settings.public_url}/billing/upgrade"
        )
        return cls(
            settings=settings,
            catalog=catalog,
            engine=engine,
            writer_engine=writer_engine,
            writer=writer,
            gateway=StripeGateway.from_settings(settings),
            usage_api=metering.provide_usage_api(catalog, writer),
            sessions=create_session_factory(engine),
        )

    def services(self, session: AsyncSession) -> Services:
        return Services(self, session)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[Services]:
        """A session and its services; the services commit what they change."""
        async with self.sessions() as session:
            yield Services(self, session)

    def stripe_worker(self) -> StripeWorker:
        return StripeWorker(
            self.engine,
            self.gateway,
            lambda session: self.services(session).stripe_events,
            auto_top_ups=self.auto_top_ups(),
        )

    def auto_top_ups(self) -> AutoTopUps:
        return AutoTopUps(
            self.sessions,
            self.catalog,
            self.gateway,
            metering=lambda session: self.services(session).metering,
            notifications=lambda session: self.services(session).notifications,
        )

    def notification_worker(self) -> NotificationWorker:
        return NotificationWorker(
            self.engine,
            sender_from_settings(self.settings.smtp_url, self.settings.public_url),
            notifications=lambda session: self.services(session).notifications,
            metering=lambda session: self.services(session).metering,
        )

    def reconcile_worker(self) -> ReconcileWorker | None:
        """The daily reconcile at RECONCILE_AT (None when it is off)."""
        at = self.settings.reconcile_at
        if at is None:
            return None

        def services(session: AsyncSession) -> tuple[BillingService, StripeMirror]:
            built = self.services(session)
            return built.billing, built.mirror

        return ReconcileWorker(self.sessions, services, at)

    def background_workers(self) -> list[BackgroundWorker]:
        workers: list[BackgroundWorker] = [self.stripe_worker(), self.notification_worker()]
        reconcile = self.reconcile_worker()
        if reconcile is not None:
            workers.append(reconcile)
        return workers

    async def close(self) -> None:
        await self.writer.close()
        await self.writer_engine.dispose()
        await self.engine.dispose()


class Services:
    """The domain services on one session, each built once, on first use."""

    def __init__(self, parts: Parts, session: AsyncSession) -> None:
        self.parts = parts
        self.session = session

    @cached_property
    def accounts(self) -> AccountService:
        return accounts.provide_account_service(self.session, self.parts.catalog)

    @cached_property
    def two_factor(self) -> TwoFactorService:
        return accounts.provide_two_factor(self.session, self.parts.settings)

    @cached_property
    def account_deletion(self) -> AccountDeletion:
        return privacy.provide_account_deletion(
            self.session, self.parts.catalog, self.billing, self.parts.gateway, self.two_factor
        )

    @cached_property
    def data_export(self) -> DataExport:
        return privacy.provide_data_export(self.parts.sessions, self.parts.catalog)

    @cached_property
    def user_sessions(self) -> SessionRegistry:
        return accounts.provide_session_registry(self.session, self.parts.settings)

    @cached_property
    def account_flows(self) -> AccountFlows:
        return accounts.provide_account_flows(
            self.session,
            self.customers,
            self.notifications,
            self.user_sessions,
            # Built on first use: most account actions never call Stripe.
            lambda customer, change: self.billing.sync_customer_email(customer, change),
        )

    @cached_property
    def customers(self) -> CustomerService:
        return customers.provide_customer_service(self.session, self.parts.catalog)

    @cached_property
    def api_keys(self) -> ApiKeyService:
        return apikeys.provide_api_key_service(self.session, self.parts.settings)

    @cached_property
    def metering(self) -> MeteringService:
        return metering.provide_metering_service(
            self.session, self.parts.catalog, self.parts.writer
        )

    @cached_property
    def guests(self) -> GuestService:
        return metering.provide_guest_service(self.session, self.parts.catalog, self.customers)

    @cached_property
    def guest_pages(self) -> GuestPages:
        return billing.provide_guest_pages(
            self.parts.catalog, self.parts.settings, self.customers, self.metering, self.guests
        )

    @cached_property
    def pages(self) -> BillingPages:
        return billing.provide_billing_pages(
            self.session, self.parts.catalog, self.parts.settings, self.customers, self.metering
        )

    @cached_property
    def mirror(self) -> StripeMirror:
        return billing.provide_stripe_mirror(
            self.session, self.parts.catalog, self.parts.gateway, self.metering
        )

    @cached_property
    def checkout_ledger(self) -> StripeEventRepository:
        return stripe_sync.provide_checkout_ledger(self.session)

    @cached_property
    def billing(self) -> BillingService:
        return billing.provide_billing_service(
            self.session,
            self.parts.catalog,
            self.parts.settings,
            self.parts.gateway,
            self.metering,
            self.mirror,
            self.checkout_ledger,
        )

    @cached_property
    def auto_top_up(self) -> AutoTopUpSettings:
        return billing.provide_auto_top_up_settings(self.session, self.parts.catalog)

    @cached_property
    def plan_changes(self) -> PlanChangeService:
        return billing.provide_plan_changes(self.billing, self.parts.settings)

    @cached_property
    def billing_details(self) -> BillingDetailsService:
        return billing.provide_billing_details(self.session, self.parts.gateway, self.billing)

    @cached_property
    def notifications(self) -> NotificationService:
        return notifications.provide_notification_service(
            self.session, self.parts.settings, self.parts.catalog
        )

    @cached_property
    def organizations(self) -> OrganizationService:
        return organizations.provide_organization_service(
            self.session, self.parts.settings, self.customers, self.notifications
        )

    @cached_property
    def stripe_events(self) -> StripeEventService:
        return stripe_sync.provide_stripe_event_service(
            self.session, self.parts.gateway, self.mirror, self.notifications
        )

    @cached_property
    def usage_export(self) -> UsageExport:
        return billing.provide_usage_export(self.parts.sessions)

    @cached_property
    def usage_reports(self) -> UsageReports:
        return admin.provide_usage_reports(self.session, self.parts.sessions, self.parts.catalog)

    @cached_property
    def admin(self) -> AdminService:
        return admin.provide_admin_service(
            self.session,
            self.parts.catalog,
            self.customers,
            self.metering,
            self.pages,
            self.billing,
            self.stripe_events,
            self.api_keys,
        )


def web_dependencies(parts: Parts) -> dict[str, Provide]:
    """Litestar's dependencies: constants of the process, and each service of the request's
    `Services` (built once per request, on the request's session, when a handler asks)."""

    def constant(value: Any) -> Provide:
        def provide() -> Any:
            return value

        return Provide(provide, use_cache=True, sync_to_thread=False)

    def service(pick: Callable[[Services], Any]) -> Provide:
        def provide(services: NamedDependency[Services]) -> Any:
            return pick(services)

        return Provide(provide, sync_to_thread=False)

    def provide_services(db_session: NamedDependency[AsyncSession]) -> Services:
        return Services(parts, db_session)

    def provide_portal_links(
        request: Request[Any, Any, Any], services: NamedDependency[Services]
    ) -> Any:
        return billing.provide_portal_links(
            services.session, parts.settings, services.customers, portal_store(request)
        )

    return {
        "settings": constant(parts.settings),
        "catalog": constant(parts.catalog),
        "stripe_gateway": constant(parts.gateway),
        "usage": constant(parts.usage_api),
        "services": Provide(provide_services, sync_to_thread=False),
        "account_service": service(lambda s: s.accounts),
        "user_sessions": service(lambda s: s.user_sessions),
        "two_factor": service(lambda s: s.two_factor),
        "account_deletion": service(lambda s: s.account_deletion),
        "data_export": service(lambda s: s.data_export),
        "usage_export": service(lambda s: s.usage_export),
        "usage_reports": service(lambda s: s.usage_reports),
        "account_flows": service(lambda s: s.account_flows),
        "customer_service": service(lambda s: s.customers),
        "organization_service": service(lambda s: s.organizations),
        "metering_service": service(lambda s: s.metering),
        "guest_service": service(lambda s: s.guests),
        "guest_pages": service(lambda s: s.guest_pages),
        # Signup with a guest token (app.accounts.guest_claim): the guest pages carry it over.
        "guest_claim": service(lambda s: s.guest_pages),
        "billing_pages": service(lambda s: s.pages),
        "billing_service": service(lambda s: s.billing),
        "plan_changes": service(lambda s: s.plan_changes),
        "auto_top_up_settings": service(lambda s: s.auto_top_up),
        "billing_details_service": service(lambda s: s.billing_details),
        "stripe_event_service": service(lambda s: s.stripe_events),
        "notification_service": service(lambda s: s.notifications),
        "admin_service": service(lambda s: s.admin),
        "portal_links": Provide(provide_portal_links, sync_to_thread=False),
        # The logged-in user's billing account, for the pages scoped to it.
        "current_customer": Provide(accounts.provide_current_customer),
    }
