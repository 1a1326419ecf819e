"""How the admin domain's services are built (see app/composition.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.service import AdminService
from app.admin.usage_reports import UsageReports
from app.apikeys.service import ApiKeyService
from app.billing.service import BillingService
from app.billing.views import BillingPages
from app.catalog.models import Catalog
from app.customers.service import CustomerService
from app.metering.service import MeteringService
from app.stripe_sync.service import StripeEventService


def provide_admin_service(
    db_session: AsyncSession,
    catalog: Catalog,
    customer_service: CustomerService,
    metering_service: MeteringService,
    billing_pages: BillingPages,
    billing_service: BillingService,
    stripe_event_service: StripeEventService,
    api_key_service: ApiKeyService,
) -> AdminService:
    return AdminService(
        db_session,
        catalog,
        customers=customer_service,
        metering=metering_service,
        pages=billing_pages,
        billing=billing_service,
        events=stripe_event_service,
        api_keys=api_key_service,
    )


def provide_usage_reports(
    db_session: AsyncSession, sessions: async_sessionmaker[AsyncSession], catalog: Catalog
) -> UsageReports:
    """Pages on the request's session; the CSV downloads on sessions of their own."""
    return UsageReports(db_session, sessions, catalog)
