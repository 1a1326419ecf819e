"""The customer's billing pages."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from app.accounts.guards import current_user, requires_user
from app.catalog.models import Catalog
from app.customers.service import CustomerService
from app.lib.errors import NotFound
from app.web.responses import page


class BillingController(Controller):
    path = "/billing"
    include_in_schema = False
    guards = [requires_user]

    @get("/")
    async def dashboard(
        self,
        request: Request[Any, Any, Any],
        customer_service: NamedDependency[CustomerService],
        catalog: NamedDependency[Catalog],
    ) -> Template:
        user = current_user(request)
        assert user is not None
        customer = await customer_service.for_user(user.id)
        if customer is None:
            raise NotFound("No billing account is linked to this login.")
        subscription = await customer_service.subscription(customer)
        plan = catalog.plan(subscription.plan_slug) or catalog.default_plan
        return page(
            request,
            "billing/dashboard.html",
            {"customer": customer, "subscription": subscription, "plan": plan},
        )
