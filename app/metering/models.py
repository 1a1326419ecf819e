"""Metering tables: usage events, running totals per period, credits ledger, reservations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK
from app.lib.clock import utcnow


class UsageEvent(Base):
    """An accepted usage event; at most one per (customer, transaction_id)."""

    __tablename__ = "usage_events"
    __table_args__ = (
        UniqueConstraint("customer_id", "transaction_id"),
        Index("ix_usage_events_customer_id", "customer_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    meter_code: Mapped[str] = mapped_column(String(64))
    transaction_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    credits_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    period_start: Mapped[datetime] = mapped_column()
    timestamp: Mapped[datetime] = mapped_column()
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fingerprint: Mapped[str] = mapped_column(String(64))
    external_subscription_id: Mapped[str | None] = mapped_column(String(255))
    reservation_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageTotal(Base):
    """Running total of a meter for a customer in one period: reads never sum raw events."""

    __tablename__ = "usage_totals"
    __table_args__ = (UniqueConstraint("customer_id", "meter_code", "period_start"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    meter_code: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[datetime] = mapped_column()
    period_end: Mapped[datetime | None] = mapped_column()
    used: Mapped[int] = mapped_column(BigInteger, default=0)
    # The part of `used` paid for with credits, so used - credits_used <= the included quota.
    credits_used: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped by every transaction that changes this customer and meter's credit lots or holds
    # (app.metering.batch_repository.bump_lots_holds): a usage batch written without locks
    # checks that what it decided from is unchanged (app.metering.unlocked).
    lots_holds_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class UsageDay(Base):
    """Usage of one meter by one customer per UTC day, by event timestamp: what the usage charts
    read, so a chart never sums raw events. On the day a subscription's billing period starts,
    usage from that moment on is a bucket of its own (`starts_at` = the period's start), so a
    period's chart counts exactly that period's usage."""

    __tablename__ = "usage_days"
    __table_args__ = (Index("ix_usage_days_starts_at", "starts_at"),)

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    meter_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageMeterDay(Base):
    """Usage of one meter by every customer per UTC day (of `usage_days.starts_at`): what the
    admin overview's usage chart reads, so it costs the same at 10 or 10,000 customers.

    Added to in the usage writer's transaction, like `usage_days`. Each process adds to a row
    of its own (`shard`, from its process id), so writers of different customers in different
    processes never wait for one another on these rows; a reader sums the shards."""

    __tablename__ = "usage_meter_days"

    meter_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)


class CreditGrant(Base):
    """Credits added to a customer's meter; consumed oldest expiry first, after the quota."""

    __tablename__ = "credit_grants"
    __table_args__ = (
        UniqueConstraint("customer_id", "transaction_id"),
        Index("ix_credit_grants_customer_meter", "customer_id", "meter_code"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    meter_code: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))  # purchase | admin | promotion | api
    reason: Mapped[str] = mapped_column(String(500), default="")
    transaction_id: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CreditLedgerEntry(Base):
    """Every change of a credit balance: +grant, -consume, -expire. Sums equal the remaining."""

    __tablename__ = "credit_ledger"
    __table_args__ = (Index("ix_credit_ledger_customer_created", "customer_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    grant_id: Mapped[int] = mapped_column(ForeignKey("credit_grants.id", ondelete="CASCADE"))
    meter_code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # grant | consume | expire
    amount: Mapped[int] = mapped_column(BigInteger)
    usage_event_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reservation(Base):
    """A hold on balance until it expires, is committed (becomes usage) or is released."""

    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("customer_id", "transaction_id"),
        Index("ix_reservations_holds", "customer_id", "meter_code", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    meter_code: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    transaction_id: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="held")
    expires_at: Mapped[datetime] = mapped_column()
    committed_amount: Mapped[int | None] = mapped_column(BigInteger)
    usage_event_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
