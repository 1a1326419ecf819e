"""How the organizations domain's services are built (see app/composition.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.customers.service import CustomerService
from app.organizations.service import InvitationMailer, OrganizationService


def provide_organization_service(
    db_session: AsyncSession,
    settings: Settings,
    customers: CustomerService,
    mailer: InvitationMailer,
) -> OrganizationService:
    return OrganizationService(db_session, customers, mailer, settings.public_url)
