"""The customer's billing pages, the demo's Try it action and portal links (HTTP only).

Every page is scoped to the logged-in user's own customer: no route takes a customer id, so
there is nothing of another customer to ask for. The Stripe actions (checkout, cards,
subscription changes) live in `app/billing/action_controllers.py`.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.stores.base import Store
from msgspec import Struct

from app.accounts.auth import start_login
from app.accounts.guards import requires_user
from app.accounts.second_step import begin_second_step
from app.accounts.two_factor import TwoFactorService
from app.accounts.user_sessions import SessionRegistry
from app.apikeys.guards import ApiKeyAuthentication
from app.billing.auto_top_up_settings import AutoTopUpSettings
from app.billing.portal_links import STORE_NAME, PortalLinkService
from app.billing.schemas import BillingSummaryOut, summary_out
from app.billing.view_models import Account
from app.billing.views import BillingPages
from app.catalog.models import Interval
from app.customers.models import BILLING_ADMIN, MEMBER, Customer
from app.lib.errors import NotFound
from app.metering.schemas import ExternalIdPath
from app.organizations.guards import current_org, requires_role
from app.web.api_request import ApiRequest, path_text
from app.web.errors import ApiError, ApiOperation, api_docs
from app.web.responses import page, redirect, wants_fragment

# The JSON pages' errors (app.web.errors answers paths ending in .json in JSON).
SESSION_JSON_ERRORS = {
    401: ResponseSpec(ApiError, description="Not logged in", generate_examples=False),
    404: ResponseSpec(
        ApiError, description="No billing account for this login", generate_examples=False
    ),
}
METERS_FRAGMENT = "billing/_meters.html"
CHART_FRAGMENT = "billing/_usage_chart.html"
NO_STORE = {"Cache-Control": "no-store"}


async def _dashboard_context(
    pages: BillingPages, customer: Customer, request: Request[Any, Any, Any]
) -> dict[str, Any]:
    account = await pages.account(customer)
    # A member sees the plan and usage, not invoices or cards: not even read for them.
    sees_money = current_org(request).can(BILLING_ADMIN)
    rows, invoice_count = await pages.latest_invoices(customer, 3) if sees_money else ([], 0)
    cards = await pages.cards(customer, account) if sees_money else []
    return {
        **_base(account),
        "meters": await pages.meters(
            customer, plan=account.plan, subscription=account.subscription
        ),
        "chart": await pages.chart(customer, subscription=account.subscription),
        "invoices": rows,
        "invoice_count": invoice_count,
        "default_card": next((row for row in cards if row.card.is_default), None),
        "card_count": len(cards),
        "features": pages.feature_comparison(account.plan),
    }


def _base(account: Account) -> dict[str, Any]:
    return {
        "account": account,
        "customer": account.customer,
        "subscription": account.subscription,
        "plan": account.plan,
        "status": account.status,
    }


class BillingController(Controller):
    path = "/billing"
    include_in_schema = False
    # Plan and usage for every member; what costs money or shows payments needs a billing
    # admin (or an owner): docs/organizations.md.
    guards = [requires_user, requires_role(MEMBER)]

    @get("/")
    async def dashboard(
        self,
        request: Request[Any, Any, Any],
        billing_pages: NamedDependency[BillingPages],
        current_customer: NamedDependency[Customer],
    ) -> Template:
        context = await _dashboard_context(billing_pages, current_customer, request)
        return page(request, "billing/dashboard.html", context)

    @get("/meters")
    async def meters(
        self,
        request: Request[Any, Any, Any],
        billing_pages: NamedDependency[BillingPages],
        current_customer: NamedDependency[Customer],
        v: FromQuery[str] = "",
    ) -> Template | Response[None]:
        """The meters partial (polled); 204 when the client already shows the current state."""
        if not wants_fragment(request):
            return page(
                request,
                "billing/dashboard.html",
                await _dashboard_context(billing_pages, current_customer, request),
            )
        meters = await billing_pages.meters(current_customer)
        if v and v == meters.version:
            return Response(None, status_code=204, headers={"Vary": "HX-Request", **NO_STORE})
        response = page(request, METERS_FRAGMENT, {"meters": meters, "try_oob": True})
        if v:  # the client showed an older state: let the chart catch up too
            response.headers["HX-Trigger-After-Settle"] = "meters-updated"
        return response

    @get("/chart")
    async def chart(
        self,
        request: Request[Any, Any, Any],
        billing_pages: NamedDependency[BillingPages],
        current_customer: NamedDependency[Customer],
    ) -> Template:
        if not wants_fragment(request):
            context = await _dashboard_context(billing_pages, current_customer, request)
        else:
            context = {"chart": await billing_pages.chart(current_customer)}
        return page(request, "billing/dashboard.html", context, fragment=CHART_FRAGMENT)

    @post("/try")
    async def try_it(
        self,
        request: Request[Any, Any, Any],
        billing_pages: NamedDependency[BillingPages],
        current_customer: NamedDependency[Customer],
    ) -> Template | Redirect:
        """Demo mode: a fake AI request that records one `ai_requests` event server-side."""
        if not billing_pages.demo_mode:
            raise NotFound("Try it is only available in demo mode.")
        ok, message = await billing_pages.try_it(current_customer)
        kind = "success" if ok else "error"
        if not wants_fragment(request):
            flash(request, message, category=kind)
            return redirect(request, "/billing")
        meters = await billing_pages.meters(current_customer, notice=message, notice_kind=kind)
        response = page(request, METERS_FRAGMENT, {"meters": meters, "try_oob": True})
        response.headers["HX-Trigger-After-Settle"] = "usage-changed"
        return response

    @get(
        "/summary.json",
        include_in_schema=True,
        tags=["billing"],
        summary="The signed-in customer's plan, balances, features and next invoice",
        description="For the SaaS's own frontend, with the portal's session cookie (the "
        "same login as /billing). Read from the portal's database: no Stripe call.",
        security=[{"sessionCookie": []}],  # Litestar's session auth declares the scheme
        media_type=MediaType.JSON,
        responses=SESSION_JSON_ERRORS,
        operation_class=ApiOperation,
    )
    async def summary(
        self,
        billing_pages: NamedDependency[BillingPages],
        current_customer: NamedDependency[Customer],
    ) -> Response[BillingSummaryOut]:
        summary = await billing_pages.summary(current_customer)
        body = summary_out(summary, billing_pages.metering.upgrade_url)
        return Response(body, headers={"Vary": "Cookie", **NO_STORE})

    @get("/upgrade", guards=[requires_role(BILLING_ADMIN)])
    async def upgrade(
        self,
        request: Request[Any, Any, Any],
        billing_pages: NamedDependency[BillingPages],
        current_customer: NamedDependency[Customer],
        interval: FromQuery[str] = "",
    ) -> Template:
        account = await billing_pages.account(current_customer)
        if interval not in ("month", "year"):
            interval = "year" if account.subscription.interval == "year" else "month"
        chosen: Interval = "year" if interval == "year" else "month"
        context = {
            **_base(account),
            "interval": chosen,
            "plans": billing_pages.plan_cards(account, chosen),
            "max_savings": billing_pages.max_savings_percent(),
            "features": billing_pages.feature_comparison(account.plan),
        }
        return page(request, "billing/upgrade.html", context, fragment="billing/_plans.html")

    @get("/credits", guards=[requires_role(BILLING_ADMIN)])
    async def credits(
        self,
        request: Request[Any, Any, Any],
        billing_pages: NamedDependency[BillingPages],
        auto_top_up_settings: NamedDependency[AutoTopUpSettings],
        current_customer: NamedDependency[Customer],
    ) -> Template:
        account = await billing_pages.account(current_customer)
        meters = await billing_pages.meters(current_customer, plan=account.plan)
        context = {
            **_base(account),
            "packs": billing_pages.credit_packs(),
            "meters": meters,
            "ledger": await billing_pages.ledger(current_customer),
            "auto": await auto_top_up_settings.view(current_customer),
        }
        return page(request, "billing/credits.html", context)

    @get("/invoices", guards=[requires_role(BILLING_ADMIN)])
    async def invoices(
        self,
        request: Request[Any, Any, Any],
        billing_pages: NamedDependency[BillingPages],
        current_customer: NamedDependency[Customer],
        page_number: Annotated[str, QueryParameter(name="page")] = "1",
    ) -> Template:
        account = await billing_pages.account(current_customer)
        rows, number, pages, total = await billing_pages.invoices(current_customer, page_number)
        context = {
            **_base(account),
            "invoices": rows,
            "page": number,
            "pages": pages,
            "total": total,
        }
        return page(request, "billing/invoices.html", context, fragment="billing/_invoices.html")

    @get("/invoices/{invoice_id:str}", guards=[requires_role(BILLING_ADMIN)])
    async def invoice(
        self,
        request: Request[Any, Any, Any],
        billing_pages: NamedDependency[BillingPages],
        current_customer: NamedDependency[Customer],
        invoice_id: FromPath[str],
    ) -> Template:
        account = await billing_pages.account(current_customer)
        detail = await billing_pages.invoice(current_customer, invoice_id)
        return page(request, "billing/invoice.html", {**_base(account), "detail": detail})

    @get("/payment-methods", guards=[requires_role(BILLING_ADMIN)])
    async def payment_methods(
        self,
        request: Request[Any, Any, Any],
        billing_pages: NamedDependency[BillingPages],
        current_customer: NamedDependency[Customer],
    ) -> Template:
        account = await billing_pages.account(current_customer)
        cards = await billing_pages.cards(current_customer, account)
        context = {**_base(account), "cards": cards}
        return page(request, "billing/payment_methods.html", context)


class PortalController(Controller):
    """`/portal/{token}`: a signed, single-use link logs its customer in (no password).

    GET checks the link and answers a page whose form POSTs it back (submitted by a script at
    once, or by its button); only the POST uses the link up, so a link preview or a mail
    scanner fetching the URL leaves it working for its person."""

    path = "/portal"
    include_in_schema = False
    opt = {"public": True}

    @get("/{token:str}")
    async def confirm(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        portal_links: NamedDependency[PortalLinkService],
    ) -> Template:
        await portal_links.check(token)
        response = page(request, "billing/portal_enter.html", {"token": token})
        response.headers.update(
            {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex", **NO_STORE}
        )
        return response

    @post("/{token:str}", status_code=303)
    async def enter(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        portal_links: NamedDependency[PortalLinkService],
        user_sessions: NamedDependency[SessionRegistry],
        two_factor: NamedDependency[TwoFactorService],
    ) -> Redirect:
        user_id, org_id = await portal_links.login(token)
        if await two_factor.is_on(user_id):  # the link stands for the password, not the code
            return begin_second_step(request, user_id, "/billing", org_id)
        await start_login(request, user_sessions, user_id, org_id)
        return Redirect(
            "/billing",
            status_code=303,
            headers={"Referrer-Policy": "no-referrer", **NO_STORE},
        )


class PortalApiController(Controller):
    path = "/api/v1/customers"
    middleware = [ApiKeyAuthentication]
    request_class = ApiRequest  # no htmx headers; bodies checked once (app.web.api_request)
    tags = ["customers"]
    security = [{"apiKey": []}]

    @get(
        "/{external_id:str}/portal_url",
        summary="A single-use, 5-minute link that logs the customer into their billing page",
        media_type=MediaType.JSON,
        **api_docs(404),
    )
    async def portal_url(
        self,
        external_id: ExternalIdPath,
        portal_links: NamedDependency[PortalLinkService],
        member: Annotated[
            str | None,
            QueryParameter(
                max_length=254,
                description="The email of the member to log in (POST .../members attaches "
                "one); without it, the customer's creator or first owner",
            ),
        ] = None,
    ) -> Response[PortalUrlResponse]:
        url = await portal_links.issue(
            path_text(external_id, "external_id"),
            member=None if member is None else path_text(member, "member"),
        )
        return Response(PortalUrlResponse(PortalUrlOut(url)), headers=NO_STORE)


class PortalUrlOut(Struct):
    portal_url: str


class PortalUrlResponse(Struct):
    customer: PortalUrlOut


def portal_store(request: Request[Any, Any, Any]) -> Store:
    return request.app.stores.get(STORE_NAME)
