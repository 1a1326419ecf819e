"""`/billing/details`: the customer's billing details and tax IDs (HTTP only; rules in
app.billing.details). A refused form (a malformed tax ID, as Stripe words it) is shown again
with its values and the message on its field, answered 422."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from msgspec import Struct, structs

from app.accounts.guards import requires_user
from app.billing.details import BillingDetailsService, DetailsInput
from app.customers.models import BILLING_ADMIN, Customer
from app.lib.countries import COUNTRIES
from app.lib.errors import ValidationFailed
from app.lib.tax_ids import TAX_ID_TYPES
from app.organizations.guards import requires_role
from app.web.responses import page, redirect

DETAILS_PAGE = "/billing/details"
DETAILS_FIELDS = tuple(field.name for field in fields(DetailsInput))
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class TaxIdForm(Struct):
    tax_id_type: str = ""
    tax_id_value: str = ""


@dataclass(frozen=True)
class _Owner:
    """The customer's id and email, read before a service call: a refused change rolls the
    session back, which expires the customer's row."""

    id: int
    email: str | None

    @classmethod
    def of(cls, customer: Customer) -> _Owner:
        return cls(customer.id, customer.email)


async def _page(
    request: Request[Any, Any, Any],
    service: BillingDetailsService,
    customer: _Owner,
    *,
    values: dict[str, str] | None = None,
    tax_values: dict[str, str] | None = None,
    error: ValidationFailed | None = None,
) -> Template:
    view = await service.view(customer.id)
    if values is None:
        row = view.details
        values = {name: (getattr(row, name) or "") if row else "" for name in DETAILS_FIELDS}
    context = {
        "account_email": customer.email,
        "view": view,
        "values": values,
        "tax_values": tax_values or {"tax_id_type": "eu_vat", "tax_id_value": ""},
        "errors": {str(error.extra.get("field") or ""): error.message} if error else {},
        "countries": COUNTRIES,
        "tax_id_types": TAX_ID_TYPES,
    }
    return page(
        request, "billing/details.html", context, status_code=error.status_code if error else 200
    )


class BillingDetailsController(Controller):
    path = DETAILS_PAGE
    # The organization's billing details: owners and billing admins (docs/organizations.md).
    guards = [requires_user, requires_role(BILLING_ADMIN)]
    include_in_schema = False

    @get("/")
    async def show(
        self,
        request: Request[Any, Any, Any],
        billing_details_service: NamedDependency[BillingDetailsService],
        current_customer: NamedDependency[Customer],
    ) -> Template:
        return await _page(request, billing_details_service, _Owner.of(current_customer))

    @post("/")
    async def save(
        self,
        request: Request[Any, Any, Any],
        billing_details_service: NamedDependency[BillingDetailsService],
        current_customer: NamedDependency[Customer],
        data: Annotated[DetailsInput, Form],
    ) -> Template | Redirect:
        values = asdict(data)
        owner = _Owner.of(current_customer)
        try:
            await billing_details_service.save(current_customer, data)
        except ValidationFailed as exc:
            return await _page(request, billing_details_service, owner, values=values, error=exc)
        flash(request, "Billing details saved.", category="success")
        return redirect(request, DETAILS_PAGE)

    @post("/tax-ids")
    async def add_tax_id(
        self,
        request: Request[Any, Any, Any],
        billing_details_service: NamedDependency[BillingDetailsService],
        current_customer: NamedDependency[Customer],
        data: Annotated[TaxIdForm, Form],
    ) -> Template | Redirect:
        owner = _Owner.of(current_customer)
        try:
            added = await billing_details_service.add_tax_id(
                current_customer, data.tax_id_type, data.tax_id_value
            )
        except ValidationFailed as exc:
            return await _page(
                request,
                billing_details_service,
                owner,
                tax_values=structs.asdict(data),
                error=exc,
            )
        flash(request, f"Tax ID {added.value} added.", category="success")
        return redirect(request, DETAILS_PAGE)

    @post("/tax-ids/{tax_id:int}/remove")
    async def remove_tax_id(
        self,
        request: Request[Any, Any, Any],
        billing_details_service: NamedDependency[BillingDetailsService],
        current_customer: NamedDependency[Customer],
        tax_id: FromPath[int],
    ) -> Redirect:
        await billing_details_service.remove_tax_id(current_customer, tax_id)
        flash(request, "Tax ID removed.", category="success")
        return redirect(request, DETAILS_PAGE)
