"""How the privacy domain's request-scoped objects are built (see app/composition.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.two_factor import TwoFactorService
from app.billing.service import BillingService
from app.catalog.models import Catalog
from app.privacy.deletion import AccountDeletion
from app.privacy.export import DataExport
from app.stripe.gateway import StripeGateway


def provide_account_deletion(
    db_session: AsyncSession,
    catalog: Catalog,
    billing: BillingService,
    gateway: StripeGateway,
    two_factor: TwoFactorService,
) -> AccountDeletion:
    return AccountDeletion(db_session, catalog, billing, gateway, two_factor)


def provide_data_export(sessions: async_sessionmaker[AsyncSession], catalog: Catalog) -> DataExport:
    """On sessions of its own: a download outlives the request's session."""
    return DataExport(sessions, catalog)
