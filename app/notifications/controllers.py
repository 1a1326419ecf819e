"""`/billing/settings`: the customer's email preferences (HTTP only; rules in the service)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from msgspec import Struct

from app.accounts.guards import current_user, requires_user
from app.customers.models import Customer
from app.customers.service import CustomerService
from app.lib.errors import NotFound
from app.notifications.service import NotificationService
from app.web.responses import page, redirect

SETTINGS_PAGE = "/billing/settings"
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class EmailSettingsForm(Struct):
    # An unchecked checkbox is not sent at all: absent means off.
    usage_emails: str = ""


async def _customer(request: Request[Any, Any, Any], customers: CustomerService) -> Customer:
    user = current_user(request)
    assert user is not None  # requires_user ran
    customer = await customers.for_user(user.id)
    if customer is None:
        raise NotFound("No billing account is linked to this login.")
    return customer


class NotificationSettingsController(Controller):
    path = SETTINGS_PAGE
    guards = [requires_user]
    include_in_schema = False

    @get("/")
    async def show(
        self,
        request: Request[Any, Any, Any],
        customer_service: NamedDependency[CustomerService],
    ) -> Template:
        customer = await _customer(request, customer_service)
        return page(request, "billing/settings.html", {"customer": customer})

    @post("/")
    async def save(
        self,
        request: Request[Any, Any, Any],
        customer_service: NamedDependency[CustomerService],
        notification_service: NamedDependency[NotificationService],
        data: Annotated[EmailSettingsForm, Form],
    ) -> Redirect:
        customer = await _customer(request, customer_service)
        enabled = data.usage_emails.lower() in {"on", "1", "true", "yes"}
        await notification_service.set_usage_emails(customer, enabled)
        flash(
            request,
            "Usage emails are on." if enabled else "Usage emails are off. Payment emails still go.",
            category="success",
        )
        return redirect(request, SETTINGS_PAGE)
