"""The credits page's auto top-up and low-balance email forms (HTTP only; the rules are in
app/billing/auto_top_up_settings.py). Plain HTML forms: they work without JavaScript."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.plugins.flash import flash
from litestar.response import Redirect
from msgspec import Struct

from app.accounts.guards import requires_user
from app.billing.auto_top_up_settings import AutoTopUpSettings
from app.customers.models import BILLING_ADMIN, Customer
from app.lib.errors import ValidationFailed
from app.organizations.guards import requires_role
from app.web.responses import redirect

CREDITS_PAGE = "/billing/credits"
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class TopUpForm(Struct):
    # An unchecked checkbox is not sent at all: absent means off.
    enabled: str = ""
    pack: str = ""
    threshold: str = ""
    monthly_cap: str = ""


class AlertForm(Struct):
    enabled: str = ""
    meter: str = ""
    alert_threshold: str = ""


async def _saved(request: Request[Any, Any, Any], saving: Awaitable[str], anchor: str) -> Redirect:
    """Save; say what changed (or what was wrong) and go back to the form."""
    try:
        flash(request, await saving, category="success")
    except ValidationFailed as exc:
        flash(request, exc.message, category="error")
    return redirect(request, f"{CREDITS_PAGE}#{anchor}")


class AutoTopUpController(Controller):
    path = CREDITS_PAGE
    # It spends money: owners and billing admins (docs/organizations.md).
    guards = [requires_user, requires_role(BILLING_ADMIN)]
    include_in_schema = False

    @post("/auto-top-up")
    async def save_top_up(
        self,
        request: Request[Any, Any, Any],
        auto_top_up_settings: NamedDependency[AutoTopUpSettings],
        current_customer: NamedDependency[Customer],
        data: Annotated[TopUpForm, Form],
    ) -> Redirect:
        saving = auto_top_up_settings.save_top_up(
            current_customer,
            enabled=data.enabled,
            pack=data.pack,
            threshold=data.threshold,
            monthly_cap=data.monthly_cap,
        )
        return await _saved(request, saving, "auto-top-up")

    @post("/low-balance")
    async def save_alert(
        self,
        request: Request[Any, Any, Any],
        auto_top_up_settings: NamedDependency[AutoTopUpSettings],
        current_customer: NamedDependency[Customer],
        data: Annotated[AlertForm, Form],
    ) -> Redirect:
        saving = auto_top_up_settings.save_alert(
            current_customer,
            enabled=data.enabled,
            meter=data.meter,
            threshold=data.alert_threshold,
        )
        return await _saved(request, saving, "low-balance")
