"""Notification rules: which emails exist, when they are due, and how they are rendered.

Every email is rendered when it is enqueued (so the admin Outbox page shows exactly what was
sent) and written to `email_outbox` **in the caller's transaction**, keyed by a `dedupe_key`:

| kind | dedupe_key | from |
|---|---|---|
| `usage_warning` / `usage_exhausted` | `usage:<customer>:<meter>:<period start>:80` / `:100` | worker scan of usage totals |
| `credits_expiring` | `credits_expiring:<grant id>` | worker scan of credit grants |
| `trial_will_end` | `trial_will_end:<stripe event id>` | `customer.subscription.trial_will_end` |
| `payment_failed` | `payment_failed:<invoice id>:<stripe event id>` | `invoice.payment_failed` (each failed attempt) |
| `payment_succeeded` | `payment_succeeded:<invoice id>` | `invoice.paid` |
| `payment_action_required` | `payment_action_required:<invoice id>` | `invoice.payment_action_required` (3-D Secure; once per invoice, and instead of `payment_failed`) |
| `password_reset`, `verify_email`, `email_change`, `email_change_notice` | `<kind>:<account token id>` | app/accounts/flows.py (to the address the link is for) |

Enqueueing is an insert-or-ignore on that key, so a duplicate or replayed Stripe event, or a
second scan (by this or another worker), never makes a second email. Usage and credit emails
respect `Customer.usage_emails`; payment and trial emails always go. This service never
commits, except `set_usage_emails` (a user action): the webhook ledger or the worker does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from jinja2 import Environment, StrictUndefined
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.emails import (  # noqa: F401 (the account kinds, re-exported)
    ACCOUNT_KINDS,
    EMAIL_CHANGE,
    EMAIL_CHANGE_NOTICE,
    PASSWORD_RESET,
    VERIFY_EMAIL,
)
from app.catalog.models import Catalog
from app.config import PROJECT_ROOT
from app.customers.models import Customer
from app.lib.clock import utcnow
from app.lib.errors import NotFound
from app.lib.jinja import format_date, jinja_environment
from app.lib.money import format_money
from app.metering.models import CreditGrant
from app.notifications.models import EmailOutboxMessage
from app.notifications.repository import NotificationRepository

if TYPE_CHECKING:
    from app.metering.service import Balance, MeteringService

USAGE_WARNING = "usage_warning"
USAGE_EXHAUSTED = "usage_exhausted"
CREDITS_EXPIRING = "credits_expiring"
TRIAL_WILL_END = "trial_will_end"
PAYMENT_FAILED = "payment_failed"
PAYMENT_SUCCEEDED = "payment_succeeded"
PAYMENT_ACTION_REQUIRED = "payment_action_required"
# An invitation into an organization (app/organizations/service.py), to the invited address.
INVITATION = "invitation"
# Auto top-up (app/stripe_sync/auto_top_up.py): a pack bought, a purchase over the monthly
# cap (not made), a payment that failed (auto top-up turned off); the low-balance email.
AUTO_TOP_UP = "auto_top_up"
AUTO_TOP_UP_CAPPED = "auto_top_up_capped"
AUTO_TOP_UP_FAILED = "auto_top_up_failed"
CREDITS_LOW = "credits_low"
KINDS = (
    USAGE_WARNING,
    USAGE_EXHAUSTED,
    CREDITS_EXPIRING,
    TRIAL_WILL_END,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    PAYMENT_ACTION_REQUIRED,
    *sorted(ACCOUNT_KINDS),
    INVITATION,
    AUTO_TOP_UP,
    AUTO_TOP_UP_CAPPED,
    AUTO_TOP_UP_FAILED,
    CREDITS_LOW,
)
# The ones a customer can turn off on /billing/settings; payment emails always go.
USAGE_KINDS = frozenset({USAGE_WARNING, USAGE_EXHAUSTED, CREDITS_EXPIRING})
THRESHOLDS = (80, 100)
CREDITS_EXPIRING_WITHIN = timedelta(days=7)
PAGE_SIZE = 50


@lru_cache(maxsize=1)
def email_environment() -> Environment:
    """The pages' environment and filters for `templates/emails/<kind>.txt|.html`: HTML
    autoescaped, text not; a missing variable is an error rather than an empty string in
    someone's inbox."""
    return jinja_environment(
        PROJECT_ROOT / "templates", undefined=StrictUndefined, keep_trailing_newline=True
    )


def message_id_for(dedupe_key: str, public_url: str) -> str:
    """A stable Message-ID: a resend of the same email carries the same id, so receivers
    (and people) can tell it is the same message."""
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:40]
    host = urlparse(public_url).hostname or "billing-portal.invalid"
    return f"<{digest}@{host}>"


@dataclass(frozen=True)
class Enqueued:
    queued: bool  # a new row was written
    note: str  # what happened, for the event ledger and logs

    def __str__(self) -> str:
        return self.note


@dataclass(frozen=True)
class Draft:
    """An email a scan found due, to enqueue in a separate (write) transaction."""

    dedupe_key: str
    kind: str
    customer: Customer
    subject: str
    context: dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class NotificationService:
    def __init__(self, session: AsyncSession, public_url: str, catalog: Catalog | None = None):
        self.session = session
        self.public_url = public_url.rstrip("/")
        self.catalog = catalog
        self.repo = NotificationRepository(session)

    def url(self, path: str) -> str:
        return f"{self.public_url}{path}"

    # Rendering and enqueueing ---------------------------------------------------------

    def render(self, kind: str, subject: str, context: dict[str, Any]) -> Rendered:
        env = email_environment()
        links = {
            "dashboard_url": self.url("/billing"),
            "plans_url": self.url("/billing/upgrade"),
            "credits_url": self.url("/billing/credits"),
            "invoices_url": self.url("/billing/invoices"),
            "cards_url": self.url("/billing/payment-methods"),
            "settings_url": self.url("/billing/settings"),
            "account_url": self.url("/account"),
        }
        values = {
            **links,
            **context,
            "subject": subject,
            "usage_email": kind in USAGE_KINDS,
            "account_email": kind in ACCOUNT_KINDS,
            "invitation_email": kind == INVITATION,
            "credits_email": kind == CREDITS_LOW,
        }
        text = env.get_template(f"emails/{kind}.txt").render(values)
        html = env.get_template(f"emails/{kind}.html").render(values)
        return Rendered(subject, text, html)

    async def enqueue(
        self,
        *,
        dedupe_key: str,
        kind: str,
        customer: Customer,
        subject: str,
        context: dict[str, Any],
        to_address: str | None = None,
    ) -> Enqueued:
        """Render and add the email unless its key exists (insert-or-ignore); to the
        customer's address unless `to_address` says another (a new address to confirm)."""
        if kind not in KINDS:
            raise ValueError(f"unknown email kind {kind!r}")
        to_address = to_address or customer.email
        if not to_address:
            return Enqueued(False, f"no email ({kind}): customer has no address")
        if kind in USAGE_KINDS and not customer.usage_emails:
            return Enqueued(False, f"no email ({kind}): usage emails are off")
        rendered = self.render(kind, subject, {"customer": customer, **context})
        now = utcnow()
        inserted = await self.repo.insert_or_ignore(
            {
                "dedupe_key": dedupe_key[:255],
                "customer_id": customer.id,
                "to_address": to_address,
                "kind": kind,
                "subject": rendered.subject[:255],
                "text_body": rendered.text,
                "html_body": rendered.html,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "message_id": message_id_for(dedupe_key, self.public_url),
                "created_at": now,
            }
        )
        return Enqueued(
            inserted, f"email {kind} queued" if inserted else f"email {kind} already queued"
        )

    # From Stripe events (called by the webhook handlers, in the event's transaction) ----

    async def trial_will_end(self, stripe_event_id: str, stripe_subscription_id: str) -> str:
        found = await self.repo.subscription(stripe_subscription_id)
        if found is None:
            return "no email (trial_will_end): unknown subscription"
        subscription, customer = found
        if subscription.status != "trialing" or subscription.trial_end is None:
            return "no email (trial_will_end): not trialing any more"
        plan = self.catalog.plan(subscription.plan_slug) if self.catalog else None
        plan_name = plan.name if plan else subscription.plan_slug
        queued = await self.enqueue(
            dedupe_key=f"trial_will_end:{stripe_event_id}",
            kind=TRIAL_WILL_END,
            customer=customer,
            subject=f"Your {plan_name} trial ends on {format_date(subscription.trial_end)}",
            context={"plan_name": plan_name, "trial_end": subscription.trial_end},
        )
        return queued.note

    async def payment_failed(self, stripe_event_id: str, stripe_invoice_id: str) -> str:
        found = await self.repo.invoice(stripe_invoice_id)
        if found is None:
            return "no email (payment_failed): unknown invoice"
        invoice, customer = found
        # Stripe's current state decides: a failure reported after the invoice got paid
        # (late or replayed event) must not alarm anyone.
        if invoice.status in ("paid", "void") or invoice.amount_due <= 0:
            return f"no email (payment_failed): invoice is {invoice.status}"
        if invoice.action_required_at is not None:  # the bank asks the customer: not a decline
            return "no email (payment_failed): it waits for the customer (payment_action_required)"
        amount = format_money(invoice.amount_due, invoice.currency)
        queued = await self.enqueue(
            dedupe_key=f"payment_failed:{stripe_invoice_id}:{stripe_event_id}",
            kind=PAYMENT_FAILED,
            customer=customer,
            subject=f"Your payment of {amount} failed: please update your payment method",
            context={"invoice": invoice, "amount": amount},
        )
        return queued.note

    async def payment_action_required(self, stripe_invoice_id: str) -> str:
        """The customer's bank asks them to confirm the payment (3-D Secure): one email per
        invoice, with the link to Stripe's page where they do it."""
        found = await self.repo.invoice(stripe_invoice_id)
        if found is None:
            return "no email (payment_action_required): unknown invoice"
        invoice, customer = found
        if invoice.status != "open" or not invoice.hosted_invoice_url:
            return f"no email (payment_action_required): invoice is {invoice.status}"
        amount = format_money(invoice.amount_due, invoice.currency, cents=True)
        queued = await self.enqueue(
            dedupe_key=f"payment_action_required:{stripe_invoice_id}",
            kind=PAYMENT_ACTION_REQUIRED,
            customer=customer,
            subject=f"Your bank needs you to confirm a payment of {amount}",
            context={"invoice": invoice, "amount": amount},
        )
        return queued.note

    async def payment_succeeded(self, stripe_invoice_id: str) -> str:
        found = await self.repo.invoice(stripe_invoice_id)
        if found is None:
            return "no email (payment_succeeded): unknown invoice"
        invoice, customer = found
        if invoice.status != "paid" or invoice.amount_paid <= 0:
            return f"no email (payment_succeeded): invoice is {invoice.status}, nothing charged"
        amount = format_money(invoice.amount_paid, invoice.currency)
        label = f"invoice {invoice.number}" if invoice.number else "your invoice"
        queued = await self.enqueue(
            dedupe_key=f"payment_succeeded:{stripe_invoice_id}",
            kind=PAYMENT_SUCCEEDED,
            customer=customer,
            subject=f"Payment received: {amount} for {label}",
            context={"invoice": invoice, "amount": amount},
        )
        return queued.note

    # From the worker's scans --------------------------------------------------------------

    async def usage_drafts(
        self, metering: MeteringService, customer_ids: list[int], now: datetime | None = None
    ) -> list[Draft]:
        """Threshold emails due for these customers' current periods and not yet queued.

        Percentages come from `MeteringService.balances_for` (the dashboard's balance rules:
        included quota only, the plan's reset period). Only the highest threshold reached is
        sent: a jump from 50 % to 100 % between two scans is one email, not two.
        """
        now = now or utcnow()
        drafts: dict[str, Draft] = {}
        for customer in await self.repo.customers(customer_ids):
            if not customer.email or not customer.usage_emails:
                continue
            try:
                balances = await metering.balances_for(customer, now)
            except NotFound:
                continue
            for balance in balances:
                threshold = _threshold(balance)
                if threshold is None or balance.period_start is None:
                    continue
                key = _usage_key(customer.id, balance, threshold)
                drafts[key] = Draft(
                    dedupe_key=key,
                    kind=USAGE_EXHAUSTED if threshold >= 100 else USAGE_WARNING,
                    customer=customer,
                    subject=_usage_subject(balance, threshold),
                    context={"balance": balance, "threshold": threshold},
                )
        return await self._not_queued(drafts)

    async def credit_drafts(
        self, now: datetime | None = None, within: timedelta = CREDITS_EXPIRING_WITHIN
    ) -> list[Draft]:
        """One email per credit grant with credits left that expires within `within`."""
        now = now or utcnow()
        drafts = {}
        for grant, customer in await self.repo.expiring_grants(now, now + within, limit=500):
            key = f"credits_expiring:{grant.id}"
            drafts[key] = Draft(
                dedupe_key=key,
                kind=CREDITS_EXPIRING,
                customer=customer,
                subject=_credits_subject(grant, self.catalog),
                context={"grant": grant, "meter_name": _meter_name(grant.meter_code, self.catalog)},
            )
        return await self._not_queued(drafts)

    async def _not_queued(self, drafts: dict[str, Draft]) -> list[Draft]:
        existing = await self.repo.existing_keys(drafts)
        return [draft for key, draft in drafts.items() if key not in existing]

    async def enqueue_drafts(self, drafts: list[Draft]) -> int:
        """Enqueue drafts found by a scan; returns how many rows were new."""
        queued = 0
        for draft in drafts:
            outcome = await self.enqueue(
                dedupe_key=draft.dedupe_key,
                kind=draft.kind,
                customer=draft.customer,
                subject=draft.subject,
                context=draft.context,
            )
            queued += outcome.queued
        return queued

    # Organizations (app/organizations/service.py: in its transaction) ----------------------

    async def invitation(
        self,
        *,
        customer: Customer,
        to_address: str,
        organization: str,
        inviter: str,
        role: str,
        accept_url: str,
        expires_at: datetime,
        dedupe_key: str,
    ) -> None:
        """An invitation into `organization` to `to_address` (greeted by no name: the
        organization's is not theirs)."""
        await self.enqueue(
            dedupe_key=dedupe_key,
            kind=INVITATION,
            customer=customer,
            to_address=to_address,
            subject=f"{inviter} invited you to {organization}"[:255],
            context={
                "customer": {"name": ""},
                "organization": organization,
                "inviter": inviter,
                "role": role,
                "accept_url": accept_url,
                "expires_at": expires_at,
            },
        )

    # The customer's settings (a user action: commits) -------------------------------------

    async def set_usage_emails(self, customer: Customer, enabled: bool) -> None:
        customer.usage_emails = enabled
        await self.session.commit()

    # The admin Outbox page ----------------------------------------------------------------

    async def outbox(self, status: str | None, page: int) -> list[EmailOutboxMessage]:
        page = max(1, page)
        return await self.repo.recent(status or None, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)

    async def outbox_counts(self) -> dict[str, int]:
        return await self.repo.count_by_status()

    async def message(self, message_id: int) -> EmailOutboxMessage:
        message = await self.repo.get(message_id)
        if message is None:
            raise NotFound(f"No email #{message_id}.", code="email_not_found")
        return message


def _threshold(balance: Balance) -> int | None:
    # Unlimited or nothing included (a guest's zero quota): there is nothing to warn about.
    if balance.limit is None or balance.limit <= 0:
        return None
    reached = [t for t in THRESHOLDS if balance.used_above(t, inclusive=True)]
    return reached[-1] if reached else None


def _usage_key(customer_id: int, balance: Balance, threshold: int) -> str:
    assert balance.period_start is not None
    start = balance.period_start.strftime("%Y%m%dT%H%M%SZ")
    return f"usage:{customer_id}:{balance.code}:{start}:{threshold}"


def _usage_subject(balance: Balance, threshold: int) -> str:
    if threshold >= 100:
        return f"You have used all your included {balance.name}"
    return f"You have used {threshold}% of your included {balance.name}"


def _meter_name(code: str, catalog: Catalog | None) -> str:
    meter = catalog.meter(code) if catalog else None
    return meter.name if meter else code


def _credits_subject(grant: CreditGrant, catalog: Catalog | None) -> str:
    name = _meter_name(grant.meter_code, catalog)
    return f"{grant.remaining:,} {name} credits expire on {format_date(grant.expires_at)}"
