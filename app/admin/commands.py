"""The admin's audited commands: grant credits, change plan, cancel, resume, open the portal
view, create and revoke API keys, replay a Stripe event.

Each goes through the owning domain's service, which commits its own work; the audit entry is
written after it succeeds, in its own transaction. Each confirm form carries a one-time
`request_id`: a resubmitted form finds its audit entry and does nothing twice (the credit grant
is also idempotent by its transaction id, which is derived from the `request_id`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import AuditLog
from app.admin.repository import AdminRepository
from app.apikeys.models import ApiKey
from app.apikeys.service import ApiKeyService
from app.billing.service import BillingService
from app.catalog.models import Catalog
from app.customers.models import Customer
from app.customers.service import CustomerInput, CustomerService
from app.customers.statuses import SubscriptionStatus
from app.db.transactions import rolls_back_on_error
from app.lib.clock import utcnow
from app.lib.errors import NotFound, ValidationFailed, quoted
from app.metering.service import MeteringService
from app.stripe_sync.service import StripeEventService

# How long a confirmed "open portal view" lets the admin look at the customer's pages.
PORTAL_VIEW_WINDOW = timedelta(minutes=30)
MAX_REASON = 500
MAX_GRANT = 10_000_000

ACTIONS = {
    "grant_credits": "Grant credits",
    "change_plan": "Change plan",
    "cancel": "Cancel subscription",
    "resume": "Resume subscription",
    "view_portal": "Open portal view",
    "api_key.create": "Create API key",
    "api_key.revoke": "Revoke API key",
    "stripe_event.replay": "Replay Stripe event",
    "invoice.refund": "Refund invoice",
    "payment.refund": "Refund payment",
    "reconcile.started": "Daily reconcile started",
    "reconcile.finished": "Daily reconcile finished",
}


@dataclass(frozen=True)
class Actor:
    user_id: int
    email: str


@dataclass(frozen=True)
class Outcome:
    message: str
    category: str = "success"
    entry: AuditLog | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def new_request_id() -> str:
    return secrets.token_urlsafe(16)


def required_reason(value: str | None) -> str:
    reason = (value or "").strip()
    if not reason:
        raise ValidationFailed("Say why: a reason is required.", field="reason")
    if len(reason) > MAX_REASON:
        raise ValidationFailed(
            f"The reason must be at most {MAX_REASON} characters.", field="reason"
        )
    return reason


def checked_request_id(value: str | None) -> str:
    value = (value or "").strip()
    if not value or len(value) > 64:
        raise ValidationFailed("This form has expired; open it again.", field="request_id")
    return value


class AdminCommands:
    def __init__(
        self,
        session: AsyncSession,
        repo: AdminRepository,
        catalog: Catalog,
        *,
        customers: CustomerService,
        metering: MeteringService,
        billing: BillingService,
        events: StripeEventService,
        api_keys: ApiKeyService,
    ) -> None:
        self.session = session
        self.repo = repo
        self.catalog = catalog
        self.customers = customers
        self.metering = metering
        self.billing = billing
        self.events = events
        self.api_keys = api_keys

    # Audit ---------------------------------------------------------------------------------

    async def _already_done(self, request_id: str) -> AuditLog | None:
        return await self.repo.audit_by_request_id(request_id)

    async def _audit(
        self,
        actor: Actor,
        action: str,
        target_type: str,
        target_id: str,
        reason: str,
        details: dict[str, Any],
        request_id: str | None,
    ) -> AuditLog:
        """Append one entry in a fresh transaction (the action's own work is committed)."""
        # End any read snapshot first (SQLite WAL: a transaction that read before another
        # connection's commit cannot write). commit(), not rollback(): nothing is expired.
        await self.session.commit()
        entry = AuditLog(
            actor_user_id=actor.user_id,
            actor_email=actor.email,
            action=action,
            target_type=target_type,
            target_id=target_id,
            reason=reason,
            details=json.loads(json.dumps(details, default=str)),
            request_id=request_id,
        )
        self.repo.add_audit(entry)
        try:
            await self.session.commit()
        except IntegrityError:  # the same form submitted twice at once: one entry
            await self.session.rollback()
            existing = await self.repo.audit_by_request_id(request_id or "")
            if existing is None:
                raise
            return existing
        return entry

    # Customer actions ----------------------------------------------------------------------

    def grant_summary(self, meter_code: str, amount: Any, expires_days: Any) -> dict[str, Any]:
        """Validate a grant's parameters (for the confirm page and the action)."""
        meter = self.catalog.meter(meter_code or "")
        if meter is None:
            raise ValidationFailed("Choose a meter.", field="meter")
        try:
            value = int(str(amount).strip())
        except (TypeError, ValueError):
            raise ValidationFailed("The amount must be a whole number.", field="amount") from None
        if not 1 <= value <= MAX_GRANT:
            raise ValidationFailed(f"The amount must be 1 to {MAX_GRANT:,}.", field="amount")
        days: int | None = None
        if str(expires_days or "").strip():
            try:
                days = int(str(expires_days).strip())
            except ValueError:
                raise ValidationFailed(
                    "Expiry must be a number of days.", field="expires"
                ) from None
            if not 1 <= days <= 3650:
                raise ValidationFailed("Expiry must be 1 to 3650 days.", field="expires")
        return {
            "meter": meter.code,
            "meter_name": meter.name,
            "amount": value,
            "expires_days": days,
        }

    @rolls_back_on_error
    async def grant_credits(
        self,
        actor: Actor,
        external_id: str,
        meter_code: str,
        amount: Any,
        expires_days: Any,
        reason: str | None,
        request_id: str | None,
    ) -> Outcome:
        summary = self.grant_summary(meter_code, amount, expires_days)
        why = required_reason(reason)
        rid = checked_request_id(request_id)
        customer = await self.customers.get(external_id)
        done = await self._already_done(rid)
        if done is not None:
            return Outcome("This grant was already made.", "info", done)
        expires_at = (
            utcnow() + timedelta(days=summary["expires_days"]) if summary["expires_days"] else None
        )
        external, label = customer.external_id, customer.email or customer.external_id
        await self.session.commit()  # end this read snapshot; the writer has its own connection
        result = await self.metering.grant_credits(
            external,
            summary["meter"],
            summary["amount"],
            reason=why,
            transaction_id=f"admin_{rid}",
            expires_at=expires_at,
            source="admin",
        )
        entry = await self._audit(
            actor,
            "grant_credits",
            "customer",
            external,
            why,
            {
                "meter": summary["meter"],
                "amount": summary["amount"],
                "expires_at": expires_at.isoformat() if expires_at else None,
                "grant_id": result.public_id,
                "transaction_id": result.transaction_id,
            },
            rid,
        )
        return Outcome(
            f"Granted {summary['amount']:,} {summary['meter_name']} credits to {label}.",
            entry=entry,
        )

    async def change_plan_summary(
        self, external_id: str, plan_slug: str, interval: str
    ) -> dict[str, Any]:
        customer = await self.customers.get(external_id)
        subscription = await self.customers.subscription(customer)
        plan = self.catalog.plan(plan_slug or "")
        if plan is None:
            raise ValidationFailed(f"Unknown plan {quoted(plan_slug)}.", field="plan")
        interval = "year" if interval == "year" else "month"
        if plan.price(interval) is None:  # type: ignore[arg-type]
            raise ValidationFailed(f"{plan.name} has no {interval}ly price.", field="interval")
        through_stripe = bool(
            subscription.stripe_subscription_id and subscription.status in SubscriptionStatus.live()
        )
        if through_stripe:
            how = "Through Stripe: the current paid subscription is " + (
                "canceled at the end of its period."
                if plan.is_free
                else "switched now, and the difference is prorated and invoiced."
            )
        else:
            how = "No Stripe subscription: the plan is set directly, without a charge" + (
                " (complimentary)." if not plan.is_free else "."
            )
        return {
            "customer": customer,
            "subscription": subscription,
            "plan": plan,
            "interval": interval,
            "through_stripe": through_stripe,
            "how": how,
        }

    @rolls_back_on_error
    async def change_plan(
        self,
        actor: Actor,
        external_id: str,
        plan_slug: str,
        interval: str,
        reason: str | None,
        request_id: str | None,
    ) -> Outcome:
        why = required_reason(reason)
        rid = checked_request_id(request_id)
        summary = await self.change_plan_summary(external_id, plan_slug, interval)
        done = await self._already_done(rid)
        if done is not None:
            return Outcome("This plan change was already made.", "info", done)
        customer: Customer = summary["customer"]
        before = summary["subscription"]
        details: dict[str, Any] = {
            "from_plan": before.plan_slug,
            "from_interval": before.interval,
            "to_plan": summary["plan"].slug,
            "to_interval": summary["interval"],
            "through_stripe": summary["through_stripe"],
        }
        if summary["through_stripe"]:
            result = await self.billing.change_plan(
                customer, summary["plan"].slug, summary["interval"]
            )
            message, category = result.message, result.category
        else:
            await self.customers.upsert(
                CustomerInput(external_id=customer.external_id, plan=summary["plan"].slug)
            )
            message, category = f"Now on {summary['plan'].name} (set directly).", "success"
        details["result"] = message
        entry = await self._audit(
            actor, "change_plan", "customer", customer.external_id, why, details, rid
        )
        return Outcome(message, "success" if category == "info" else category, entry)

    @rolls_back_on_error
    async def cancel_or_resume(
        self,
        actor: Actor,
        action: str,
        external_id: str,
        reason: str | None,
        request_id: str | None,
    ) -> Outcome:
        assert action in ("cancel", "resume")
        why = required_reason(reason)
        rid = checked_request_id(request_id)
        customer = await self.customers.get(external_id)
        done = await self._already_done(rid)
        if done is not None:
            return Outcome("This was already done.", "info", done)
        if action == "cancel":
            result = await self.billing.cancel(customer)
        else:
            result = await self.billing.resume(customer)
        entry = await self._audit(
            actor,
            action,
            "customer",
            customer.external_id,
            why,
            {"result": result.message, "outcome": result.category},
            rid,
        )
        return Outcome(result.message, result.category, entry)

    @rolls_back_on_error
    async def open_portal_view(
        self, actor: Actor, external_id: str, reason: str | None, request_id: str | None
    ) -> Outcome:
        why = required_reason(reason)
        rid = checked_request_id(request_id)
        customer = await self.customers.get(external_id)
        entry = await self._audit(
            actor,
            "view_portal",
            "customer",
            customer.external_id,
            why,
            {"read_only": True, "minutes": int(PORTAL_VIEW_WINDOW.total_seconds() // 60)},
            rid,
        )
        return Outcome("Opened the read-only view.", entry=entry)

    # API keys ------------------------------------------------------------------------------

    @rolls_back_on_error
    async def create_api_key(
        self, actor: Actor, name: str, reason: str | None, request_id: str | None
    ) -> tuple[ApiKey | None, str | None, Outcome]:
        """The raw key is returned once, for the response page; it is never stored or logged."""
        why = required_reason(reason)
        rid = checked_request_id(request_id)
        done = await self._already_done(rid)
        if done is not None:
            return None, None, Outcome("This key was already created.", "info", done)
        key, raw = await self.api_keys.create(name)
        entry = await self._audit(
            actor,
            "api_key.create",
            "api_key",
            str(key.id),
            why,
            {"name": key.name, "prefix": key.prefix},
            rid,
        )
        return key, raw, Outcome(f"API key “{key.name}” created.", entry=entry)

    @rolls_back_on_error
    async def revoke_api_key(
        self, actor: Actor, key_id: int, reason: str | None, request_id: str | None
    ) -> Outcome:
        why = required_reason(reason)
        rid = checked_request_id(request_id)
        done = await self._already_done(rid)
        if done is not None:
            return Outcome("This key was already revoked.", "info", done)
        key = await self.api_keys.revoke(key_id)
        entry = await self._audit(
            actor,
            "api_key.revoke",
            "api_key",
            str(key.id),
            why,
            {"name": key.name, "prefix": key.prefix},
            rid,
        )
        return Outcome(f"API key “{key.name}” revoked.", entry=entry)

    # Stripe events -------------------------------------------------------------------------

    @rolls_back_on_error
    async def replay_event(
        self, actor: Actor, stripe_event_id: str, reason: str | None, request_id: str | None
    ) -> Outcome:
        why = required_reason(reason)
        rid = checked_request_id(request_id)
        event = await self.repo.event(stripe_event_id)
        if event is None:
            raise NotFound(f"No Stripe event {stripe_event_id!r}.", code="event_not_found")
        done = await self._already_done(rid)
        if done is not None:
            return Outcome("This replay already ran.", "info", done)
        before = event.status
        row = await self.events.replay(stripe_event_id)
        entry = await self._audit(
            actor,
            "stripe_event.replay",
            "stripe_event",
            stripe_event_id,
            why,
            {"type": row.type, "before": before, "after": row.status, "error": row.last_error},
            rid,
        )
        category = "success" if row.status in ("processed", "ignored") else "error"
        return Outcome(f"Replayed {stripe_event_id}: {row.status}.", category, entry)
