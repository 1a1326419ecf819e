"""The Stripe actions behind the billing pages' forms (HTTP only; the rules are in BillingService).

Every action is a CSRF-protected POST scoped to the logged-in user's own customer, answers
303 with a flash message (or sends the browser to Stripe), and turns a Stripe failure into
a flash message instead of a 500. Browsers leave for Stripe with a 303; htmx requests
(boosted forms) get `HX-Redirect`, since an XHR cannot follow a redirect to another origin.

Canceling the plan and removing a card happen only after a confirm page: a GET of the same
path says what the POST will do (and works without JavaScript); what the POST would refuse,
the GET refuses with the same message instead of offering the button.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, NamedTuple

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.flash import flash
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect, Template
from msgspec import Struct

from app.accounts.guards import requires_user
from app.accounts.verification import must_verify, verification_refusal
from app.billing.plan_change import PlanChangeService, ReviewedFigures
from app.billing.rules import KEEP_LAST_CARD, NOTHING_TO_CANCEL
from app.billing.service import ActionResult, BillingService, review_path
from app.billing.views import STATUS_LABELS, BillingPages
from app.catalog.models import Catalog
from app.customers.models import BILLING_ADMIN, Customer
from app.lib.clock import utcnow
from app.lib.errors import DomainError, NotFound
from app.metering.service import MeteringService
from app.organizations.guards import requires_role
from app.stripe.gateway import StripeGatewayError
from app.web.responses import page, redirect

PLANS_PAGE = "/billing/upgrade"
CREDITS_PAGE = "/billing/credits"
CARDS_PAGE = "/billing/payment-methods"
DASHBOARD = "/billing"
STATUS_FRAGMENT = "billing/checkout_status.html"
# The success page (issue 21, item 7): once Stripe's webhook is applied it shows the result
# for a moment and returns to the page showing the change; a long wait says so.
RETURN_AFTER_SECONDS = 3
SLOW_CHECKOUT_SECONDS = 30


class ReturnPage(NamedTuple):
    path: str
    name: str


RETURN_PAGES = {
    "subscription": ReturnPage(DASHBOARD, "billing"),
    "payment": ReturnPage(CREDITS_PAGE, "credits"),
    "setup": ReturnPage(CARDS_PAGE, "payment methods"),
}


class PlanForm(Struct):
    plan: str = ""
    interval: str = "month"
    attempt: str = ""  # the form's own id (app.web.templating.form_attempt)


class ConfirmForm(Struct):
    plan: str = ""
    interval: str = "month"
    proration_date: str = ""
    amount: str = ""
    reviewed_at: str = ""
    review_id: str = ""
    signature: str = ""


class PackForm(Struct):
    pack: str = ""
    attempt: str = ""


Form = Body(media_type=RequestEncodingType.URL_ENCODED)


def _redirect(request: Request[Any, Any, Any], url: str) -> Redirect | ClientRedirect:
    if getattr(request, "htmx", None):
        response = ClientRedirect(redirect_to=url)
        response.status_code = 200  # htmx acts on HX-Redirect; a POST route would say 201
        return response
    return Redirect(path=url, status_code=303)


async def _run_action(
    request: Request[Any, Any, Any],
    action: Awaitable[ActionResult],
    back: str,
) -> Redirect | ClientRedirect:
    """Run an action; flash its outcome (or Stripe's error) and redirect. The action has
    rolled back what it began when it raises (app.db.transactions)."""
    try:
        result = await action
    except NotFound:
        raise
    except (StripeGatewayError, DomainError) as exc:
        flash(request, exc.message, category="error")
        return _redirect(request, back)
    if result.message:
        flash(request, result.message, category=result.category)
    return _redirect(request, result.redirect_url or back)


def _paid_plan(catalog: Catalog, plan_slug: str) -> bool:
    """True unless `plan_slug` is a free plan (an unknown one is refused further on)."""
    plan = catalog.plan(plan_slug or "")
    return plan is None or not plan.is_free


class BillingActionsController(Controller):
    path = "/billing"
    # Every action here costs money or changes how it is paid: owners and billing admins.
    guards = [requires_user, requires_role(BILLING_ADMIN)]
    include_in_schema = False

    # Checkout ---------------------------------------------------------------------------

    @post("/checkout")
    async def checkout(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        billing_service: NamedDependency[BillingService],
        data: Annotated[PlanForm, Form],
    ) -> Redirect | ClientRedirect | Template:
        if must_verify(request) and _paid_plan(billing_service.catalog, data.plan):
            return verification_refusal(request)
        return await _run_action(
            request,
            billing_service.start_plan_checkout(
                current_customer, data.plan, data.interval, attempt=data.attempt
            ),
            PLANS_PAGE,
        )

    @post("/credits/checkout")
    async def credits_checkout(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        billing_service: NamedDependency[BillingService],
        data: Annotated[PackForm, Form],
    ) -> Redirect | ClientRedirect | Template:
        if must_verify(request):
            return verification_refusal(request)
        return await _run_action(
            request,
            billing_service.start_credits_checkout(
                current_customer, data.pack, attempt=data.attempt
            ),
            CREDITS_PAGE,
        )

    @post("/payment-methods/add")
    async def add_card(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        billing_service: NamedDependency[BillingService],
    ) -> Redirect | ClientRedirect:
        return await _run_action(
            request, billing_service.start_card_setup(current_customer), CARDS_PAGE
        )

    @get("/checkout/success")
    async def checkout_success(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        billing_service: NamedDependency[BillingService],
        metering_service: NamedDependency[MeteringService],
        session_id: FromQuery[str] = "",
        since: FromQuery[str] = "",
    ) -> Template:
        """Never trusts the redirect: shows "processing" until our ledger has the webhook."""
        error: str | None = None
        try:
            status = await billing_service.checkout_status(current_customer, session_id, fetch=True)
        except StripeGatewayError as exc:  # Stripe unreachable: say so, and keep polling
            status, error = None, exc.message
        context = await _status_context(status, current_customer, metering_service)
        context.update(session_id=session_id, error=error, **_waiting(since))
        return page(request, "billing/checkout_success.html", context)

    @get("/checkout/status")
    async def checkout_status(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        billing_service: NamedDependency[BillingService],
        metering_service: NamedDependency[MeteringService],
        session_id: FromQuery[str] = "",
        since: FromQuery[str] = "",
    ) -> Template:
        """The polled partial: reads only our database."""
        status = await billing_service.checkout_status(current_customer, session_id, fetch=False)
        context = await _status_context(status, current_customer, metering_service)
        context.update(session_id=session_id, error=None, **_waiting(since))
        return page(request, "billing/checkout_success.html", context, fragment=STATUS_FRAGMENT)

    @get("/checkout/canceled")
    async def checkout_canceled(self, request: Request[Any, Any, Any]) -> Template:
        return page(request, "billing/checkout_canceled.html", {})

    # Cards ------------------------------------------------------------------------------

    @post("/payment-methods/{payment_method_id:str}/default")
    async def default_card(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        billing_service: NamedDependency[BillingService],
        payment_method_id: FromPath[str],
    ) -> Redirect | ClientRedirect:
        return await _run_action(
            request,
            billing_service.set_default_card(current_customer, payment_method_id),
            CARDS_PAGE,
        )

    @get("/payment-methods/{payment_method_id:str}/remove")
    async def confirm_remove_card(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        billing_pages: NamedDependency[BillingPages],
        payment_method_id: FromPath[str],
    ) -> Template | Redirect:
        """The confirm page of the POST below; it refuses what the POST would refuse."""
        account = await billing_pages.account(current_customer)
        removal = await billing_pages.card_removal(current_customer, account, payment_method_id)
        if not removal.row.can_remove:
            flash(request, KEEP_LAST_CARD, category="error")
            return redirect(request, CARDS_PAGE)
        context = {"removal": removal, "pm": removal.row.card, "account": account}
        return page(request, "billing/confirm_remove_card.html", context)

    @post("/payment-methods/{payment_method_id:str}/remove")
    async def remove_card(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        billing_service: NamedDependency[BillingService],
        payment_method_id: FromPath[str],
    ) -> Redirect | ClientRedirect:
        return await _run_action(
            request, billing_service.remove_card(current_customer, payment_method_id), CARDS_PAGE
        )

    # Subscription -----------------------------------------------------------------------

    @get("/subscription/cancel")
    async def confirm_cancel(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        billing_pages: NamedDependency[BillingPages],
    ) -> Template | Redirect:
        """The confirm page of the POST below; it refuses what the POST would refuse."""
        account = await billing_pages.account(current_customer)
        cancellation = billing_pages.cancellation(account)
        if cancellation is None:
            if account.status.cancel_on:  # already ends with the period: the dashboard says when
                flash(request, "Your plan is already canceled.", category="info")
            else:
                flash(request, NOTHING_TO_CANCEL, category="info")
            return redirect(request, DASHBOARD)
        context = {"cancellation": cancellation, "account": account}
        return page(request, "billing/confirm_cancel.html", context)

    @post("/subscription/cancel")
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        billing_service: NamedDependency[BillingService],
    ) -> Redirect | ClientRedirect:
        return await _run_action(request, billing_service.cancel(current_customer), DASHBOARD)

    @post("/subscription/resume")
    async def resume(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        billing_service: NamedDependency[BillingService],
    ) -> Redirect | ClientRedirect:
        return await _run_action(request, billing_service.resume(current_customer), DASHBOARD)

    @get("/subscription/review")
    async def review_change(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        plan_changes: NamedDependency[PlanChangeService],
        billing_pages: NamedDependency[BillingPages],
        plan: FromQuery[str] = "",
        interval: FromQuery[str] = "month",
    ) -> Template | Redirect | ClientRedirect:
        """What changing to `plan` does, from Stripe's preview; only its confirm (the POST
        below) changes anything."""
        if must_verify(request) and _paid_plan(billing_pages.catalog, plan):
            return verification_refusal(request)
        try:
            review = await plan_changes.review(current_customer, plan, interval)
        except StripeGatewayError as exc:
            flash(request, exc.message, category="error")
            return _redirect(request, PLANS_PAGE)
        if isinstance(review, ActionResult):
            if review.message:
                flash(request, review.message, category=review.category)
            return _redirect(request, review.redirect_url or DASHBOARD)
        context = {
            "review": review,
            "quotas": billing_pages.quota_changes(review.current_plan, review.plan),
            "account": await billing_pages.account(current_customer),
        }
        return page(request, "billing/review_change.html", context)

    @post("/subscription/change")
    async def change(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        plan_changes: NamedDependency[PlanChangeService],
        data: Annotated[ConfirmForm, Form],
    ) -> Redirect | ClientRedirect | Template:
        """The review's confirm: refused (back to the review) when Stripe's preview changed."""
        if must_verify(request) and _paid_plan(plan_changes.catalog, data.plan):
            return verification_refusal(request)
        if not data.proration_date or not data.signature:  # not from a review page
            return _redirect(request, review_path(data.plan, data.interval))
        figures = ReviewedFigures(
            data.proration_date, data.amount, data.reviewed_at, data.review_id, data.signature
        )
        return await _run_action(
            request,
            plan_changes.confirm(current_customer, data.plan, data.interval, figures),
            review_path(data.plan, data.interval),
        )

    @post("/subscription/keep")
    async def keep_plan(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        plan_changes: NamedDependency[PlanChangeService],
    ) -> Redirect | ClientRedirect:
        """Call off a scheduled plan change (a downgrade at the period end)."""
        return await _run_action(
            request, plan_changes.keep_current_plan(current_customer), DASHBOARD
        )


def _waiting(since: str) -> dict[str, Any]:
    """When the success page started waiting (unix seconds, carried by its polls and
    refreshes), and whether it has waited long enough to say so."""
    now = int(utcnow().timestamp())
    started = int(since) if since.isdigit() and len(since) <= 12 and int(since) <= now else now
    return {"since": started, "waited_long": now - started >= SLOW_CHECKOUT_SECONDS}


async def _status_context(
    status: Any, customer: Customer, metering: MeteringService
) -> dict[str, Any]:
    subscription_status = status.subscription.status if status and status.subscription else ""
    mode = status.mode if status else ""
    context: dict[str, Any] = {
        "status": status,
        "credits_balance": None,
        "limits": [],
        "status_label": STATUS_LABELS.get(subscription_status, subscription_status),
        # Where "done" returns by itself: the page that shows what changed.
        "return_to": RETURN_PAGES.get(mode, RETURN_PAGES["subscription"]),
        "return_after": RETURN_AFTER_SECONDS,
    }
    if status is None or status.state != "done":
        return context
    if status.plan is not None:
        context["limits"] = [
            (meter.name, status.plan.quotas[code].included, meter.unit)
            for code, meter in metering.catalog.meters.items()
            if code in status.plan.quotas
        ]
    if status.pack_name:
        balances = await metering.balances_for(customer)
        pack = next(
            (p for p in metering.catalog.credit_packs.values() if p.name == status.pack_name), None
        )
        if pack is not None:
            context["credits_balance"] = next(
                (b.credits for b in balances if b.code == pack.meter_code), None
            )
    return context
