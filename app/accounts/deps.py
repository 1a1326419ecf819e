"""How the accounts domain's request-scoped objects are built (see app/composition.py)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import ORG_KEY, USER_CUSTOMER
from app.accounts.emails import Mailer
from app.accounts.flows import AccountFlows, StripeEmailSync
from app.accounts.guards import current_user
from app.accounts.service import AccountService
from app.accounts.sessions import session_value
from app.accounts.two_factor import TwoFactorService
from app.accounts.user_sessions import SessionRegistry
from app.catalog.models import Catalog
from app.config import Settings
from app.customers.models import Customer
from app.customers.service import CustomerService
from app.lib.errors import NotFound


def provide_account_service(db_session: AsyncSession, catalog: Catalog) -> AccountService:
    return AccountService(db_session, catalog)


def provide_two_factor(db_session: AsyncSession, settings: Settings) -> TwoFactorService:
    return TwoFactorService(db_session, settings.secret_key)


def provide_session_registry(db_session: AsyncSession, settings: Settings) -> SessionRegistry:
    return SessionRegistry(db_session, settings.session_max_age, settings.trusted_proxies)


def provide_account_flows(
    db_session: AsyncSession,
    customers: CustomerService,
    notifications: Mailer,
    registry: SessionRegistry,
    stripe_email: StripeEmailSync,
) -> AccountFlows:
    return AccountFlows(db_session, customers, notifications, registry, stripe_email)


async def provide_current_customer(
    request: Request[Any, Any, Any], customer_service: NamedDependency[CustomerService]
) -> Customer:
    """The billing account of the logged-in user's current organization: every customer page
    is scoped to it (the role check is the route's guard, app/organizations/guards.py)."""
    user = current_user(request)
    if user is None:  # the route forgot `requires_user`: refuse rather than guess
        raise NotFound("No billing account is linked to this login.", code="no_customer")
    customer: Customer | None
    if USER_CUSTOMER in request.scope:  # read with the user by `retrieve_user`
        customer = request.scope[USER_CUSTOMER]  # type: ignore[literal-required]
    else:  # the current organization (the session's, else the personal one), as there
        org_id = session_value(request, ORG_KEY)
        customer = await customer_service.current_for(
            user.id, org_id if isinstance(org_id, int) else None
        )
    if customer is None:
        raise NotFound("No billing account is linked to this login.", code="no_customer")
    return customer
