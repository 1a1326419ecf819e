"""The admin audit log, and the indexes the admin pages' queries rely on.

`AuditLog` is **append-only**: the admin service only ever inserts rows. There is no update
or delete path in the code (no repository method, no route), and none may be added — an
audit trail an admin can edit is not one. Corrections are new entries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.billing.models import Invoice
from app.customers.models import Customer
from app.db.base import Base, BigIntPK
from app.lib.clock import utcnow
from app.stripe_sync.models import StripeEvent


class AuditLog(Base):
    """Who did what to which customer (or key, or event), when and why. Never updated."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_created", "created_at", "id"),
        Index("ix_audit_log_target", "target_type", "target_id", "id"),
        Index("ix_audit_log_action", "action", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger)  # no FK: outlives the user
    actor_email: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))  # customer | api_key | stripe_event
    target_id: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(500), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The confirm form's one-time id: a double submit records (and performs) the action once.
    request_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# Indexes on other domains' tables, declared here because only the admin queries need them
# (the admin migration creates them). See docs/admin.md for the queries each one serves.
ADMIN_INDEXES = (
    # Customer search: lower(col) range scans for a case-insensitive prefix.
    Index("ix_customers_email_lower", func.lower(Customer.email)),
    Index("ix_customers_name_lower", func.lower(Customer.name)),
    # Customer list sorted by signup date (keyset: created_at, id).
    Index("ix_customers_created_id", Customer.created_at, Customer.id),
    # Invoices: all-customer list by date, revenue by month.
    Index("ix_invoices_created_id", Invoice.created_at, Invoice.id),
    # The webhook log, newest first.
    Index("ix_stripe_events_received_id", StripeEvent.received_at, StripeEvent.id),
    Index("ix_stripe_events_object_id", StripeEvent.object_id),
)
