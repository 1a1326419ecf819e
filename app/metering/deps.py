"""How the metering domain's services are built (see app/composition.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Catalog
from app.customers.service import CustomerService
from app.metering.guests import GuestService
from app.metering.service import MeteringService, UsageApi
from app.metering.writer import UsageWriter


def provide_usage_api(catalog: Catalog, usage_writer: UsageWriter) -> UsageApi:
    """The API's metering service holds no session: one instance serves every request."""
    return UsageApi(catalog, usage_writer, usage_writer.upgrade_url)


def provide_metering_service(
    db_session: AsyncSession, catalog: Catalog, usage_writer: UsageWriter
) -> MeteringService:
    return MeteringService(db_session, catalog, usage_writer, usage_writer.upgrade_url)


def provide_guest_service(
    db_session: AsyncSession, catalog: Catalog, customer_service: CustomerService
) -> GuestService:
    return GuestService(db_session, catalog, customer_service)
