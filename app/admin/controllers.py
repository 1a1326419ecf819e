"""The billing admin pages under `/admin/billing` (HTTP only; the rules are in app/admin:
metrics.py, commands.py and service.py).

Every route requires the admin role (`requires_admin` on the controller: 401 → login for
anonymous, the 403 page for a signed-in non-admin). Every action is two steps that work
without JavaScript: a GET confirm page (summary, a required reason, a one-time request id)
and a CSRF-protected POST that performs it, writes the audit entry and answers 303 with a
flash message. Creating an API key is the exception that answers 200: the raw key is shown
once, on that response only.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, FromQuery, QueryParameter
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from markupsafe import Markup
from msgspec import Struct

from app.accounts.guards import current_user, requires_admin
from app.admin.commands import ACTIONS, Actor, Outcome, new_request_id
from app.admin.metrics import OVERVIEW_SECONDS, OverviewCache
from app.admin.refunds import REASON_LABELS, Refundable
from app.admin.service import (
    EVENT_STATUSES,
    INVOICE_STATUSES,
    SUBSCRIPTION_STATUSES,
    AdminService,
)
from app.billing.page_cache import figures_while, shows_no_usage
from app.composition import Services
from app.lib.errors import ValidationFailed
from app.lib.money import ZERO_DECIMAL_CURRENCIES
from app.lib.urls import path_segment
from app.stripe.gateway import StripeGatewayError
from app.web.responses import page

BASE = "/admin/billing"
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
PageParam = Annotated[str, QueryParameter(name="page")]
CUSTOMER_ACTIONS = {
    "grant_credits": "grant-credits",
    "change_plan": "change-plan",
    "cancel": "cancel",
    "resume": "resume",
    "view_portal": "view",
}


class ActionForm(Struct):
    reason: str = ""
    request_id: str = ""
    meter: str = ""
    amount: str = ""
    expires_days: str = ""
    plan: str = ""
    interval: str = "month"
    name: str = ""


class RefundForm(Struct):
    reason: str = ""  # the admin's note: audit log and the credit note's memo
    request_id: str = ""
    amount: str = ""
    refund_reason: str = ""


def _payment_url(object_id: str) -> str:
    """The admin view of an invoice (in_...) or of a credit pack's payment (cs_...)."""
    kind = "invoices" if object_id.startswith("in_") else "payments"
    return f"{BASE}/{kind}/{path_segment(object_id)}"


def _major(amount: int, currency: str) -> str:
    """Minor units as the form's text in the currency's major units (1250 → "12.50")."""
    if currency.lower() in ZERO_DECIMAL_CURRENCIES:
        return str(amount)
    return f"{amount // 100}.{amount % 100:02d}"


def overview_cache(request: Request[Any, Any, Any]) -> OverviewCache:
    """The app's (so the process's) cache of the overview's figures."""
    state = request.app.state
    cache = state.get("admin_overview")
    if cache is None:
        cache = state["admin_overview"] = OverviewCache()
    return cache


def _actor(request: Request[Any, Any, Any]) -> Actor:
    user = current_user(request)
    assert user is not None  # requires_admin ran
    return Actor(user_id=user.id, email=user.email)


def _customer_url(external_id: str) -> str:
    return f"{BASE}/customers/{path_segment(external_id)}"


def _done(request: Request[Any, Any, Any], outcome: Outcome, url: str) -> Redirect:
    flash(request, outcome.message, category=outcome.category)
    return Redirect(path=url, status_code=303)


_CUSTOMER_ACTIONS = {
    "grant-credits": "grant_credits",
    "change-plan": "change_plan",
    "cancel": "cancel",
    "resume": "resume",
}


class AdminController(Controller):
    path = BASE
    guards = [requires_admin]
    include_in_schema = False

    # Overview -------------------------------------------------------------------------------

    @get("/")
    async def overview(
        self, request: Request[Any, Any, Any], services: NamedDependency[Services]
    ) -> Template:
        """The figures and their rendered HTML come from the process's cache (no admin
        service is built, no query runs) when computed less than OVERVIEW_SECONDS ago; the
        whole page, from the page cache (app/billing/page_cache.py) while those figures are
        current and nothing was written."""

        async def compute() -> Markup:
            overview = await services.admin.metrics.overview()
            engine = request.app.template_engine
            assert engine is not None  # the app is built with its Jinja engine
            template = engine.get_template("admin/_overview_body.html")
            html = template.render(overview=overview, refresh_seconds=OVERVIEW_SECONDS)
            return Markup(html)  # noqa: S704 - the autoescaping environment rendered it

        cache = overview_cache(request)
        body = await cache.get(compute)
        figures_while(partial(cache.holds, body))
        return page(request, "admin/overview.html", {"body": body})

    # Customers ------------------------------------------------------------------------------

    @get("/customers")
    async def customers(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        q: FromQuery[str] = "",
        plan: FromQuery[str] = "",
        status: FromQuery[str] = "",
        sort: FromQuery[str] = "newest",
        after: FromQuery[str] = "",
    ) -> Template:
        shows_no_usage()  # the page cache keeps it through usage writes
        params = admin_service.customer_query(q, plan, status, sort, after)
        result = await admin_service.search_customers(params)
        context = {
            "params": params,
            "result": result,
            "plans": admin_service.plan_choices(),
            "statuses": SUBSCRIPTION_STATUSES,
        }
        return page(request, "admin/customers.html", context, fragment="admin/_customer_rows.html")

    @get("/customers/{external_id:str}")
    async def customer(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        external_id: FromPath[str],
        page_number: PageParam = "1",
    ) -> Template:
        detail = await admin_service.customer_detail(external_id, page_number)
        context = {
            "detail": detail,
            "plans": admin_service.plan_choices(),
            "catalog": admin_service.catalog,
        }
        return page(request, "admin/customer.html", context)

    @get("/customers/{external_id:str}/confirm")
    async def confirm_customer_action(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        external_id: FromPath[str],
        action: FromQuery[str] = "",
        meter: FromQuery[str] = "",
        amount: FromQuery[str] = "",
        expires_days: FromQuery[str] = "",
        plan: FromQuery[str] = "",
        interval: FromQuery[str] = "month",
        request_id: FromQuery[str] = "",
    ) -> Template | Redirect:
        form = ActionForm(
            meter=meter,
            amount=amount,
            expires_days=expires_days,
            plan=plan,
            interval=interval,
            request_id=request_id,
        )
        if action not in CUSTOMER_ACTIONS:
            flash(request, "Choose an action.", category="error")
            return Redirect(path=_customer_url(external_id), status_code=303)
        if not request_id:
            # The one-time id goes into this page's address, so Back or a reload after the
            # action shows the same id again and a second submit is recognised as the same
            # action (a fresh id per render granted credits twice).
            query = urlencode({**dict(request.query_params), "request_id": new_request_id()})
            return Redirect(path=f"{_customer_url(external_id)}/confirm?{query}", status_code=303)
        try:
            context = await self._confirm_context(admin_service, external_id, action, form)
        except ValidationFailed as exc:
            flash(request, exc.message, category="error")
            return Redirect(path=_customer_url(external_id), status_code=303)
        return page(request, "admin/confirm.html", context)

    async def _confirm_context(
        self,
        admin_service: AdminService,
        external_id: str,
        action: str,
        form: ActionForm,
        error: str | None = None,
    ) -> dict[str, Any]:
        customer = await admin_service.customer(external_id)
        who = customer.email or customer.external_id
        hidden: dict[str, str] = {}
        lines: list[str] = []
        danger = False
        if action == "grant_credits":
            summary = admin_service.commands.grant_summary(
                form.meter, form.amount, form.expires_days
            )
            hidden = {
                "meter": summary["meter"],
                "amount": str(summary["amount"]),
                "expires_days": str(summary["expires_days"] or ""),
            }
            lines = [
                f"Grant {summary['amount']:,} {summary['meter_name']} credits to {who}.",
                f"They expire after {summary['expires_days']} days."
                if summary["expires_days"]
                else "They do not expire.",
            ]
        elif action == "change_plan":
            summary = await admin_service.commands.change_plan_summary(
                external_id, form.plan, form.interval
            )
            hidden = {"plan": summary["plan"].slug, "interval": summary["interval"]}
            lines = [
                f"Move {who} from {summary['subscription'].plan_slug} to {summary['plan'].name} "
                f"({summary['interval']}ly).",
                summary["how"],
            ]
            danger = True
        elif action == "cancel":
            lines = [f"Cancel {who}'s paid subscription at the end of its period (through Stripe)."]
            danger = True
        elif action == "resume":
            lines = [f"Resume {who}'s subscription: it renews as usual (through Stripe)."]
        else:  # view_portal
            lines = [
                f"Open a read-only view of {who}'s billing pages for 30 minutes.",
                "You stay logged in as yourself; the opening is recorded in the audit log.",
            ]
        return {
            "title": ACTIONS[action],
            "lines": lines,
            "action_url": f"{_customer_url(customer.external_id)}/{CUSTOMER_ACTIONS[action]}",
            "cancel_url": _customer_url(customer.external_id),
            "hidden": hidden,
            "request_id": form.request_id or new_request_id(),
            "reason": form.reason,
            "error": error,
            "danger": danger,
            "testid": action,
        }

    async def _customer_action(
        self,
        request: Request[Any, Any, Any],
        admin_service: AdminService,
        external_id: str,
        action: str,
        form: ActionForm,
    ) -> Template | Redirect:
        actor = _actor(request)
        back = _customer_url(external_id)
        try:
            if action == "grant_credits":
                outcome = await admin_service.commands.grant_credits(
                    actor,
                    external_id,
                    form.meter,
                    form.amount,
                    form.expires_days,
                    form.reason,
                    form.request_id,
                )
            elif action == "change_plan":
                outcome = await admin_service.commands.change_plan(
                    actor, external_id, form.plan, form.interval, form.reason, form.request_id
                )
            elif action in ("cancel", "resume"):
                outcome = await admin_service.commands.cancel_or_resume(
                    actor, action, external_id, form.reason, form.request_id
                )
            else:
                outcome = await admin_service.commands.open_portal_view(
                    actor, external_id, form.reason, form.request_id
                )
                back = f"{back}/view"
        except ValidationFailed as exc:
            context = await self._confirm_context(
                admin_service, external_id, action, form, error=exc.message
            )
            return page(request, "admin/confirm.html", context, status_code=422)
        except StripeGatewayError as exc:
            flash(request, f"Stripe: {exc.message}", category="error")
            return Redirect(path=back, status_code=303)
        return _done(request, outcome, back)

    @post("/customers/{external_id:str}/{action:str}")
    async def customer_action(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        external_id: FromPath[str],
        action: FromPath[str],
        data: Annotated[ActionForm, Form],
    ) -> Template | Redirect:
        """grant-credits, change-plan, cancel and resume: one confirmed, audited form each."""
        name = _CUSTOMER_ACTIONS.get(action)
        if name is None:
            raise NotFoundException(f"No customer action {action!r}.")
        return await self._customer_action(request, admin_service, external_id, name, data)

    @post("/customers/{external_id:str}/view")
    async def open_view(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        external_id: FromPath[str],
        data: Annotated[ActionForm, Form],
    ) -> Template | Redirect:
        return await self._customer_action(request, admin_service, external_id, "view_portal", data)

    @get("/customers/{external_id:str}/view")
    async def view(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        external_id: FromPath[str],
    ) -> Template | Redirect:
        """The customer's dashboard, read-only, rendered for the admin (no login as them)."""
        context = await admin_service.portal_view(external_id, _actor(request))
        if context is None:
            return Redirect(
                path=f"{_customer_url(external_id)}/confirm?action=view_portal", status_code=303
            )
        return page(request, "admin/customer_view.html", context)

    # Invoices -------------------------------------------------------------------------------

    @get("/invoices")
    async def invoices(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        status: FromQuery[str] = "",
        page_number: PageParam = "1",
    ) -> Template:
        result, totals = await admin_service.invoices(status, page_number)
        context = {
            "result": result,
            "totals": totals,
            "status": status if status in INVOICE_STATUSES else "",
            "statuses": INVOICE_STATUSES,
        }
        return page(request, "admin/invoices.html", context, fragment="admin/_invoice_rows.html")

    # Refunds: an invoice, or a credit pack's payment ------------------------------------------

    def _payment_context(
        self, target: Refundable, form: RefundForm | None = None, error: str | None = None
    ) -> dict[str, Any]:
        form = form or RefundForm(amount=_major(target.refundable, target.currency))
        return {
            "target": target,
            "form": form,
            "error": error,
            "reasons": REASON_LABELS,
            "refund_url": f"{_payment_url(target.object_id)}/refund",
        }

    @get(["/invoices/{object_id:str}", "/payments/{object_id:str}"])
    async def payment(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        object_id: FromPath[str],
    ) -> Template:
        """What was paid, refunded and credited, and the refund form (amount, reason)."""
        target = await admin_service.refunds.refundable(object_id)
        return page(request, "admin/payment.html", self._payment_context(target))

    def _refund_confirm_context(
        self, target: Refundable, summary: dict[str, Any], form: RefundForm, error: str | None
    ) -> dict[str, Any]:
        who = target.customer.email or target.customer.external_id
        how = (
            "Stripe issues a credit note on the invoice and refunds its payment by that amount."
            if target.kind == "invoice"
            else "Stripe refunds the payment; the pack's unused credits are revoked in the same"
            " proportion."
        )
        return {
            "title": "Refund " + ("invoice" if target.kind == "invoice" else "payment"),
            "lines": [
                f"Refund {summary['amount_text']} of {target.title} to {who}"
                + (" (all of it)." if summary["full"] else f" ({target.money(target.paid)} paid)."),
                f"The money goes back to {target.paid_with or 'the payment method used'}.",
                how,
                f"Reason: {summary['reason_label']}. Your note below goes to the audit log"
                + (" and the credit note." if target.kind == "invoice" else "."),
            ],
            "action_url": f"{_payment_url(target.object_id)}/refund",
            "cancel_url": _payment_url(target.object_id),
            "hidden": {
                "amount": _major(summary["amount"], target.currency),
                "refund_reason": summary["reason"],
            },
            "request_id": form.request_id,
            "reason": form.reason,
            "error": error,
            "danger": True,
            "testid": "refund",
        }

    @get(["/invoices/{object_id:str}/refund", "/payments/{object_id:str}/refund"])
    async def confirm_refund(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        object_id: FromPath[str],
        amount: FromQuery[str] = "",
        refund_reason: FromQuery[str] = "",
        request_id: FromQuery[str] = "",
    ) -> Template | Redirect:
        """The review: the amount, to whom and how, before any money moves."""
        url = _payment_url(object_id)
        if not request_id:
            # The one-time id in the address: Back or a reload shows the same id again.
            query = urlencode({**dict(request.query_params), "request_id": new_request_id()})
            return Redirect(path=f"{url}/refund?{query}", status_code=303)
        target = await admin_service.refunds.refundable(object_id)
        form = RefundForm(amount=amount, refund_reason=refund_reason, request_id=request_id)
        try:
            summary = admin_service.refunds.summary(target, amount, refund_reason)
        except ValidationFailed as exc:
            context = self._payment_context(target, form, error=exc.message)
            return page(request, "admin/payment.html", context, status_code=422)
        context = self._refund_confirm_context(target, summary, form, None)
        return page(request, "admin/confirm.html", context)

    @post(["/invoices/{object_id:str}/refund", "/payments/{object_id:str}/refund"])
    async def refund(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        object_id: FromPath[str],
        data: Annotated[RefundForm, Form],
    ) -> Template | Redirect:
        refunds = admin_service.refunds
        try:
            outcome = await refunds.refund(
                _actor(request),
                object_id,
                data.amount,
                data.refund_reason,
                data.reason,
                data.request_id,
            )
        except ValidationFailed as exc:
            target = await refunds.refundable(object_id)
            if exc.extra.get("field") in ("reason", "request_id"):
                summary = refunds.summary(target, data.amount, data.refund_reason)
                context = self._refund_confirm_context(target, summary, data, exc.message)
                return page(request, "admin/confirm.html", context, status_code=422)
            context = self._payment_context(target, data, error=exc.message)
            return page(request, "admin/payment.html", context, status_code=422)
        except StripeGatewayError as exc:
            flash(request, f"Stripe: {exc.message}", category="error")
            return Redirect(path=_payment_url(object_id), status_code=303)
        return _done(request, outcome, _payment_url(object_id))

    # Stripe events --------------------------------------------------------------------------

    @get("/events")
    async def events(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        status: FromQuery[str] = "",
        type: FromQuery[str] = "",
        page_number: PageParam = "1",
    ) -> Template:
        result = await admin_service.stripe_events(status, type, page_number)
        context = {
            "result": result,
            "status": status if status in EVENT_STATUSES else "",
            "type": type.strip(),
            "statuses": EVENT_STATUSES,
        }
        return page(request, "admin/events.html", context, fragment="admin/_event_rows.html")

    @get("/events/{stripe_event_id:str}")
    async def event(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        stripe_event_id: FromPath[str],
    ) -> Template:
        event, customer = await admin_service.stripe_event(stripe_event_id)
        context = {
            "event": event,
            "customer": customer,
            "payload": json.dumps(event.payload, indent=2, sort_keys=True, default=str),
        }
        return page(request, "admin/event.html", context)

    def _replay_context(
        self, stripe_event_id: str, event: Any, form: ActionForm, error: str | None = None
    ) -> dict[str, Any]:
        return {
            "title": ACTIONS["stripe_event.replay"],
            "lines": [
                f"Process {event.type} {stripe_event_id} again (status now: {event.status}).",
                "Handlers are idempotent: a replay converges to Stripe's current state.",
            ],
            "action_url": f"{BASE}/events/{stripe_event_id}/replay",
            "cancel_url": f"{BASE}/events/{stripe_event_id}",
            "hidden": {},
            "request_id": form.request_id or new_request_id(),
            "reason": form.reason,
            "error": error,
            "danger": False,
            "testid": "replay",
        }

    @get("/events/{stripe_event_id:str}/confirm")
    async def confirm_replay(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        stripe_event_id: FromPath[str],
    ) -> Template:
        event, _customer = await admin_service.stripe_event(stripe_event_id)
        context = self._replay_context(stripe_event_id, event, ActionForm())
        return page(request, "admin/confirm.html", context)

    @post("/events/{stripe_event_id:str}/replay")
    async def replay(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        stripe_event_id: FromPath[str],
        data: Annotated[ActionForm, Form],
    ) -> Template | Redirect:
        try:
            outcome = await admin_service.commands.replay_event(
                _actor(request), stripe_event_id, data.reason, data.request_id
            )
        except ValidationFailed as exc:
            event, _customer = await admin_service.stripe_event(stripe_event_id)
            context = self._replay_context(stripe_event_id, event, data, error=exc.message)
            return page(request, "admin/confirm.html", context, status_code=422)
        return _done(request, outcome, f"{BASE}/events/{stripe_event_id}")

    # API keys -------------------------------------------------------------------------------

    async def _keys_context(self, admin_service: AdminService, **extra: Any) -> dict[str, Any]:
        return {
            "keys": await admin_service.list_api_keys(),
            "request_id": new_request_id(),
            "created": None,
            "raw_key": None,
            "error": None,
            "form": ActionForm(),
            **extra,
        }

    @get("/api-keys")
    async def api_keys(
        self, request: Request[Any, Any, Any], admin_service: NamedDependency[AdminService]
    ) -> Template:
        return page(request, "admin/api_keys.html", await self._keys_context(admin_service))

    @post("/api-keys")
    async def create_api_key(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        data: Annotated[ActionForm, Form],
    ) -> Template:
        try:
            key, raw, outcome = await admin_service.commands.create_api_key(
                _actor(request), data.name, data.reason, data.request_id
            )
        except ValidationFailed as exc:
            context = await self._keys_context(admin_service, error=exc.message, form=data)
            return page(request, "admin/api_keys.html", context, status_code=422)
        context = await self._keys_context(
            admin_service, created=key, raw_key=raw, notice=outcome.message
        )
        # The raw key is in this response only: page() marks it no-store, like every page.
        return page(request, "admin/api_keys.html", context, status_code=200)

    def _revoke_context(
        self, key: Any, form: ActionForm, error: str | None = None
    ) -> dict[str, Any]:
        return {
            "title": ACTIONS["api_key.revoke"],
            "lines": [
                f"Revoke the API key “{key.name}” ({key.prefix}…).",
                "Requests with it are refused within seconds; this cannot be undone.",
            ],
            "action_url": f"{BASE}/api-keys/{key.id}/revoke",
            "cancel_url": f"{BASE}/api-keys",
            "hidden": {},
            "request_id": form.request_id or new_request_id(),
            "reason": form.reason,
            "error": error,
            "danger": True,
            "testid": "revoke",
        }

    @get("/api-keys/{key_id:int}/confirm")
    async def confirm_revoke(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        key_id: FromPath[int],
    ) -> Template:
        key = await admin_service.api_key(key_id)
        return page(request, "admin/confirm.html", self._revoke_context(key, ActionForm()))

    @post("/api-keys/{key_id:int}/revoke")
    async def revoke_api_key(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        key_id: FromPath[int],
        data: Annotated[ActionForm, Form],
    ) -> Template | Redirect:
        try:
            outcome = await admin_service.commands.revoke_api_key(
                _actor(request), key_id, data.reason, data.request_id
            )
        except ValidationFailed as exc:
            key = await admin_service.api_key(key_id)
            context = self._revoke_context(key, data, error=exc.message)
            return page(request, "admin/confirm.html", context, status_code=422)
        return _done(request, outcome, f"{BASE}/api-keys")

    # Audit log ------------------------------------------------------------------------------

    @get("/audit")
    async def audit(
        self,
        request: Request[Any, Any, Any],
        admin_service: NamedDependency[AdminService],
        q: FromQuery[str] = "",
        action: FromQuery[str] = "",
        page_number: PageParam = "1",
    ) -> Template:
        result = await admin_service.audit_log(q, action, page_number)
        context = {
            "result": result,
            "q": q.strip(),
            "action": action if action in ACTIONS else "",
            "actions": ACTIONS,
        }
        return page(request, "admin/audit.html", context, fragment="admin/_audit_rows.html")
