"""How the billing domain's services are built (see app/composition.py)."""

from __future__ import annotations

from litestar.stores.base import Store
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.billing.auto_top_up_settings import AutoTopUpSettings
from app.billing.checkout_status import CheckoutLedger
from app.billing.details import BillingDetailsService
from app.billing.guest_pages import GuestPages
from app.billing.mirror import StripeMirror
from app.billing.plan_change import PlanChangeService
from app.billing.portal_links import PortalLinkService
from app.billing.service import BillingService
from app.billing.usage_export import UsageExport
from app.billing.views import BillingPages
from app.catalog.models import Catalog
from app.config import Settings
from app.customers.service import CustomerService
from app.metering.guests import GuestService
from app.metering.service import MeteringService
from app.stripe.gateway import StripeGateway


def provide_billing_pages(
    db_session: AsyncSession,
    catalog: Catalog,
    settings: Settings,
    customer_service: CustomerService,
    metering_service: MeteringService,
) -> BillingPages:
    return BillingPages(
        db_session, catalog, customer_service, metering_service, demo_mode=settings.demo_mode
    )


def provide_guest_pages(
    catalog: Catalog,
    settings: Settings,
    customer_service: CustomerService,
    metering_service: MeteringService,
    guest_service: GuestService,
) -> GuestPages:
    return GuestPages(
        catalog,
        customer_service,
        metering_service,
        guest_service,
        secret=settings.secret_key,
        demo_mode=settings.demo_mode,
    )


def provide_stripe_mirror(
    db_session: AsyncSession,
    catalog: Catalog,
    stripe_gateway: StripeGateway,
    metering_service: MeteringService,
) -> StripeMirror:
    return StripeMirror(db_session, catalog, stripe_gateway, metering_service)


def provide_billing_service(
    db_session: AsyncSession,
    catalog: Catalog,
    settings: Settings,
    stripe_gateway: StripeGateway,
    metering_service: MeteringService,
    stripe_mirror: StripeMirror,
    checkout_ledger: CheckoutLedger,
) -> BillingService:
    return BillingService(
        db_session,
        catalog,
        stripe_gateway,
        settings.public_url,
        metering_service,
        checkout_ledger=checkout_ledger,
        mirror=stripe_mirror,
    )


def provide_billing_details(
    db_session: AsyncSession, stripe_gateway: StripeGateway, billing_service: BillingService
) -> BillingDetailsService:
    return BillingDetailsService(db_session, stripe_gateway, billing_service)


def provide_plan_changes(billing_service: BillingService, settings: Settings) -> PlanChangeService:
    return PlanChangeService(billing_service, settings.secret_key)


def provide_portal_links(
    db_session: AsyncSession,
    settings: Settings,
    customer_service: CustomerService,
    portal_tokens: Store,
) -> PortalLinkService:
    return PortalLinkService(
        db_session, customer_service, portal_tokens, settings.secret_key, settings.public_url
    )


def provide_auto_top_up_settings(db_session: AsyncSession, catalog: Catalog) -> AutoTopUpSettings:
    return AutoTopUpSettings(db_session, catalog)


def provide_usage_export(sessions: async_sessionmaker[AsyncSession]) -> UsageExport:
    """On sessions of its own: a download outlives the request's session."""
    return UsageExport(sessions)
