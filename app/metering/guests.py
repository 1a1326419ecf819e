"""Guests: a visitor's customer on the `guest` plan, and its conversion into a signed-up one.

A guest is an ordinary customer whose subscription is on the `guest` plan (catalog.toml: a
one-off allowance that never resets), created by the SaaS (`POST /api/v1/customers` with
`plan: "guest"` and an anonymous external id kept in the visitor's cookie) or by the portal's
`/try` page.

Converting a guest into a signed-up customer (the target: created on the default plan when
no customer has that external id yet) carries over, in one transaction and exactly once:

- its usage: each meter's `used` (and the part of it paid with credits) is added to the
  target's running total of the target's current period, so it counts against the target's
  quota; the target's usage chart gets it on the conversion's day;
- its credits: each unexpired lot with credits left becomes a grant of the target (same
  remainder, same expiry; source `guest`), the guest's lot is emptied with a `transfer`
  ledger entry;
- its holds are released (a reservation cannot outlive the guest it was made for).

The guest then keeps its history but its subscription's status is `converted`: any later
write for it (usage, reservation, credits, a second conversion) is refused with
`409 guest_converted`, which names the target. Not an alias: an alias would let an anonymous
cookie keep spending a signed-up user's quota, and would hide from the SaaS that it still
sends the visitor's old id.

Race-freedom: the conversion locks the guest's subscription row for update first (SQLite: the
write lock), then the running totals and credit lots it moves, in the usage writer's order
(customer id, meter). The usage writer reads a guest's status again under a shared lock of
that row before it locks any total (app.metering.writer), so a batch of usage for the guest
either commits before the conversion (and is carried) or after it (and is refused): none is
lost, none is counted twice. Two conversions of one guest: the second waits for the row, sees
`converted`, and answers 409.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Catalog
from app.customers.models import Customer
from app.customers.service import CustomerService
from app.customers.statuses import CONVERTED, GUEST_PLAN
from app.db.page_versions import VERSIONS
from app.lib.clock import utcnow
from app.lib.errors import Conflict, ValidationFailed
from app.metering import batch_repository as batch_repo
from app.metering import repository as repo
from app.metering import rules
from app.metering.balance import usage_day_start
from app.metering.models import Reservation
from app.metering.state import CustomerPlan

reservations_t = cast(Table, Reservation.__table__)
GUEST_SOURCE = "guest"
TRANSFER = "transfer"


@dataclass(frozen=True)
class Conversion:
    guest: Customer
    target: Customer
    target_created: bool
    # Per meter: the usage and the credits carried over.
    usage: dict[str, int]
    credits: dict[str, int]


class GuestService:
    """Converts guests. Owns its transaction: commits on success, rolls back on error."""

    def __init__(self, session: AsyncSession, catalog: Catalog, customers: CustomerService):
        self.session = session
        self.catalog = catalog
        self.customers = customers

    async def convert(self, guest_external_id: str, target_external_id: str) -> Conversion:
        """Carry the guest's usage and credits over to the target, once (see the module)."""
        target_external_id = (target_external_id or "").strip()
        if not target_external_id or len(target_external_id) > 255:
            raise ValidationFailed("external_id must be 1 to 255 characters.", field="external_id")
        if target_external_id == guest_external_id:
            raise ValidationFailed(
                "A guest cannot be converted into itself.",
                code="same_customer",
                field="external_id",
            )
        try:
            try:
                result = await self._convert(guest_external_id, target_external_id)
                await self.session.commit()
            except IntegrityError:  # the target was created meanwhile by another request
                await self.session.rollback()
                result = await self._convert(guest_external_id, target_external_id)
                await self.session.commit()
        except Exception:
            await self.session.rollback()
            raise
        # Cached balances hear of it through the subscription's change (app.db.changes: a
        # Subscription update announces BALANCES in the same transaction); cached pages here.
        VERSIONS.usage_changed(guest_external_id)
        VERSIONS.usage_changed(target_external_id)
        return result

    async def _convert(self, guest_external_id: str, target_external_id: str) -> Conversion:
        guest = await self.customers.get(guest_external_id)
        # The guest's row, locked first: a second conversion and the usage writer wait here.
        subscription = await self.customers.locked_subscription(guest)
        if subscription.status == CONVERTED:
            raise rules.guest_converted(
                guest_external_id, (subscription.metadata_ or {}).get("converted_to")
            )
        if subscription.plan_slug != GUEST_PLAN:
            raise ValidationFailed(
                f"Customer {guest_external_id!r} is not a guest (plan {GUEST_PLAN!r}).",
                code="not_a_guest",
            )
        target, target_subscription, created = await self.customers.get_or_create(
            target_external_id
        )
        if target.deleted_at is not None:
            raise Conflict("That customer was deleted.", code="customer_deleted")
        if target_subscription.plan_slug == GUEST_PLAN:
            raise ValidationFailed(
                "A guest can only be converted into a customer that is not a guest.",
                code="target_is_guest",
                field="external_id",
            )
        now = utcnow()
        usage, credits = await self.session.run_sync(
            lambda sync: _move(
                sync.connection(), self.catalog, guest.id, target.id, guest.public_id, now
            )
        )
        subscription.status = CONVERTED
        subscription.metadata_ = {
            **(subscription.metadata_ or {}),
            "converted_to": target_external_id,
            "converted_at": now.isoformat(),
        }
        await self.session.flush()
        return Conversion(guest, target, created, usage, credits)


def _move(
    conn: Connection,
    catalog: Catalog,
    guest_id: int,
    target_id: int,
    guest_public_id: str,
    now: datetime,
) -> tuple[dict[str, int], dict[str, int]]:
    """Move the guest's usage, credits and holds to the target, on the locked rows."""
    plans: dict[int, CustomerPlan] = {}
    for customer_id in (guest_id, target_id):
        plan = repo.customer_plan(conn, customer_id=customer_id)
        assert plan is not None  # both rows were read in this transaction
        plans[customer_id] = plan
    slots: dict[tuple[int, str], Any] = {}
    # The usage writer's lock order: (customer id, meter code).
    for customer_id, meter_code in sorted((c, m) for c in plans for m in catalog.meters):
        plan = plans[customer_id]
        if meter_code not in rules.quota_plan(catalog, plan.plan_slug, plan.status).quotas:
            continue
        _quota, period = rules.slot_period(catalog, plan, meter_code, now)
        slots[(customer_id, meter_code)] = batch_repo.lock_slot(
            conn, customer_id, meter_code, period, now
        )
    usage: dict[str, int] = {}
    credits: dict[str, int] = {}
    days: dict[tuple[int, str, datetime], int] = {}
    grants: list[dict[str, Any]] = []
    ledger: list[dict[str, Any]] = []
    emptied: dict[int, int] = {}
    for meter_code in sorted(catalog.meters):
        source, into = slots.get((guest_id, meter_code)), slots.get((target_id, meter_code))
        if source is None or into is None:
            continue
        total, lots, _expired, _held = source
        target_total = into[0]
        if total.used:
            usage[meter_code] = total.used
            batch_repo.update_total(
                conn,
                target_total.id,
                target_total.used + total.used,
                target_total.credits_used + total.credits_used,
                now,
            )
            bucket = usage_day_start(now, plans[target_id].cycle)
            days[(target_id, meter_code, bucket)] = total.used
        for lot in lots:
            public_id = str(uuid.uuid4())
            transaction_id = f"guest:{guest_public_id}:{lot.grant_id}"
            grants.append(
                {
                    "public_id": public_id,
                    "customer_id": target_id,
                    "meter_code": meter_code,
                    "amount": lot.remaining,
                    "remaining": lot.remaining,
                    "source": GUEST_SOURCE,
                    "reason": "Carried over from your use as a guest",
                    "transaction_id": transaction_id,
                    "fingerprint": transaction_id[:64],
                    "expires_at": lot.expires_at,
                    "created_at": now,
                }
            )
            emptied[lot.grant_id] = 0
            ledger.append(
                rules.ledger_row(guest_id, lot.grant_id, meter_code, TRANSFER, -lot.remaining, now)
            )
            ledger.append(
                rules.ledger_row(target_id, public_id, meter_code, "grant", lot.remaining, now)
            )
            credits[meter_code] = credits.get(meter_code, 0) + lot.remaining
    # Lots and holds move: what a usage batch written without locks checks.
    batch_repo.bump_lots_holds(conn, [total.id for total, *_ in slots.values()])
    batch_repo.add_to_days(conn, days)
    grant_ids = batch_repo.insert_grants(conn, grants)
    batch_repo.set_grant_remaining(conn, emptied)
    for entry in ledger:
        if isinstance(entry["grant_id"], str):
            entry["grant_id"] = grant_ids[entry["grant_id"]]
    batch_repo.insert_ledger(conn, ledger)
    conn.execute(
        update(reservations_t)
        .where(reservations_t.c.customer_id == guest_id, reservations_t.c.status == "held")
        .values(status="released", updated_at=now)
    )
    return usage, credits
