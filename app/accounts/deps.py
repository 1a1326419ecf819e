"""How the accounts domain's request-scoped objects are built (see app/composition.py)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import USER_CUSTOMER
from app.accounts.guards import current_user
from app.accounts.service import AccountService
from app.catalog.models import Catalog
from app.customers.models import Customer
from app.customers.service import CustomerService
from app.lib.errors import NotFound


def provide_account_service(db_session: AsyncSession, catalog: Catalog) -> AccountService:
    return AccountService(db_session, catalog)


async def provide_current_customer(
    request: Request[Any, Any, Any], customer_service: NamedDependency[CustomerService]
) -> Customer:
    """The logged-in user's billing account: every customer page is scoped to it."""
    user = current_user(request)
    if user is None:  # the route forgot `requires_user`: refuse rather than guess
        raise NotFound("No billing account is linked to this login.", code="no_customer")
    customer: Customer | None
    if USER_CUSTOMER in request.scope:  # read with the user by `retrieve_user`
        customer = request.scope[USER_CUSTOMER]  # type: ignore[literal-required]
    else:
        customer = await customer_service.for_user(user.id)
    if customer is None:
        raise NotFound("No billing account is linked to this login.", code="no_customer")
    return customer
