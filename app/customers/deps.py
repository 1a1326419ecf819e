"""How the customers domain's services are built (see app/composition.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Catalog
from app.customers.service import CustomerService


def provide_customer_service(db_session: AsyncSession, catalog: Catalog) -> CustomerService:
    return CustomerService(db_session, catalog)
