from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK
from app.db.changes import BALANCES, track
from app.lib.clock import utcnow


class Customer(Base):
    """The billing identity; `external_id` is the SaaS backend's id for it."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), unique=True
    )
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    usage_emails: Mapped[bool] = mapped_column(Boolean, default=True)
    # Stripe's `customer.balance` (minor units; negative = credit the customer has, applied to
    # the next invoices), mirrored on `customer.updated` and by reconcile.
    stripe_balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    stripe_balance_currency: Mapped[str | None] = mapped_column(String(3))
    # When its user deleted their account (app/accounts/deletion.py): personal data removed,
    # kept for the invoices and the ledger; no login reaches it any more.
    deleted_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Subscription(Base):
    """The customer's plan, mirrored from Stripe for paid plans; every customer has one."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), unique=True
    )
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    plan_slug: Mapped[str] = mapped_column(String(64), index=True)
    interval: Mapped[str] = mapped_column(String(8), default="month")
    status: Mapped[str] = mapped_column(String(24), default="active", index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    current_period_start: Mapped[datetime | None] = mapped_column()
    current_period_end: Mapped[datetime | None] = mapped_column()
    trial_end: Mapped[datetime | None] = mapped_column()
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column()
    # A change Stripe makes later (a downgrade at the period end), from the subscription's
    # schedule; cancellable until then by releasing the schedule (app.billing.plan_change).
    stripe_schedule_id: Mapped[str | None] = mapped_column(String(255))
    scheduled_plan_slug: Mapped[str | None] = mapped_column(String(64))
    scheduled_interval: Mapped[str | None] = mapped_column(String(8))
    scheduled_change_at: Mapped[datetime | None] = mapped_column()
    # A plan change waiting for its invoice to be paid (Stripe's `pending_update`, made by
    # `payment_behavior=pending_if_incomplete` when the card asks for 3-D Secure): the plan
    # above stays until Stripe applies it; discarded by Stripe at `pending_expires_at`.
    pending_plan_slug: Mapped[str | None] = mapped_column(String(64))
    pending_interval: Mapped[str | None] = mapped_column(String(8))
    pending_invoice_id: Mapped[str | None] = mapped_column(String(255))
    pending_expires_at: Mapped[datetime | None] = mapped_column()
    # Stripe's `created` of the last event applied, so an older event never overwrites a newer one.
    stripe_state_at: Mapped[int | None] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# A plan or period change makes cached balances wrong: every process drops them at once.
track(Subscription, BALANCES, lambda _subscription: None)


# Who may act for a customer (shown as an organization) and with which role. The table lives
# with customers, below accounts: the login (app/accounts/auth.py) reads the current
# organization and the user's role with the user in one statement, and signup
# (CustomerService.create_for_user) makes the user the owner of a personal organization in the
# same transaction. The rest of organizations (team page, invitations, the API's members, the
# role guards) is app/organizations/.
Role = Literal["owner", "billing_admin", "member"]
OWNER: Final = "owner"
BILLING_ADMIN: Final = "billing_admin"
MEMBER: Final = "member"
ROLES: tuple[Role, ...] = (OWNER, BILLING_ADMIN, MEMBER)
# Roles are ordered: each may do everything the ones below it may.
RANK: dict[str, int] = {MEMBER: 0, BILLING_ADMIN: 1, OWNER: 2}


class Membership(Base):
    """A user's place in an organization. An organization always keeps one owner at least
    (app/organizations/service.py holds that rule)."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("customer_id", "user_id"),
        CheckConstraint("role IN ('owner', 'billing_admin', 'member')", name="role"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
