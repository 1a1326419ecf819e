"""`/billing/settings`: the customer's email preferences (HTTP only; rules in the service)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from msgspec import Struct

from app.accounts.guards import requires_user
from app.customers.models import BILLING_ADMIN, Customer
from app.notifications.service import NotificationService
from app.organizations.guards import requires_role
from app.web.forms import Form
from app.web.responses import page, redirect

SETTINGS_PAGE = "/billing/settings"


class EmailSettingsForm(Struct):
    # An unchecked checkbox is not sent at all: absent means off.
    usage_emails: str = ""


class NotificationSettingsController(Controller):
    path = SETTINGS_PAGE
    # The organization's emails: owners and billing admins (docs/organizations.md).
    guards = [requires_user, requires_role(BILLING_ADMIN)]
    include_in_schema = False

    @get("/")
    async def show(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
    ) -> Template:
        return page(request, "billing/settings.html", {"customer": current_customer})

    @post("/")
    async def save(
        self,
        request: Request[Any, Any, Any],
        notification_service: NamedDependency[NotificationService],
        data: Annotated[EmailSettingsForm, Form],
        current_customer: NamedDependency[Customer],
    ) -> Redirect:
        enabled = data.usage_emails.lower() in {"on", "1", "true", "yes"}
        await notification_service.set_usage_emails(current_customer, enabled)
        flash(
            request,
            "Usage emails are on." if enabled else "Usage emails are off. Payment emails still go.",
            category="success",
        )
        return redirect(request, SETTINGS_PAGE)
