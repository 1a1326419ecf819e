"""Invoices and payment methods, mirrored from Stripe by the webhook handlers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK
from app.lib.clock import utcnow


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (Index("ix_invoices_customer_created", "customer_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    stripe_invoice_id: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255))
    number: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(
        String(24), index=True
    )  # draft|open|paid|uncollectible|void
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_due: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    period_start: Mapped[datetime | None] = mapped_column()
    period_end: Mapped[datetime | None] = mapped_column()
    hosted_invoice_url: Mapped[str | None] = mapped_column(String(1000))
    invoice_pdf: Mapped[str | None] = mapped_column(String(1000))
    description: Mapped[str | None] = mapped_column(String(500))
    # What the invoice shows (app/billing/invoice_lines.py): Stripe's billing_reason, the
    # amounts between subtotal and total, the customer balance it used, its lines (our own
    # small shape, see `invoice_lines.mirror_lines`) and the payment that paid it.
    billing_reason: Mapped[str | None] = mapped_column(String(40))
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    tax: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    discount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    starting_balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    ending_balance: Mapped[int | None] = mapped_column(BigInteger)
    lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    payment_brand: Mapped[str | None] = mapped_column(String(32))
    payment_last4: Mapped[str | None] = mapped_column(String(4))
    # Refunds of its payment (charge.refunded) and credit notes issued against it.
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    amount_credited: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # When Stripe first said its payment waits for the customer (3-D Secure: the payment
    # intent `requires_action`); while the invoice is open the billing pages link to its
    # hosted page (app.billing.payment_actions).
    action_required_at: Mapped[datetime | None] = mapped_column()
    # Stripe's `created` (the invoice date); `stripe_state_at` orders updates from events.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stripe_state_at: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Who the invoice was made out to, as Stripe fixed it when finalizing it (its
    # `customer_name`, `customer_address`, `customer_tax_ids`): {name, address, tax_ids}.
    billed_to: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class BillingDetails(Base):
    """The customer's billing details as their Stripe customer has them (name, address,
    invoice email), mirrored so pages read them without a Stripe call; written after each
    change made here and by `customer.updated` (app.billing.details)."""

    __tablename__ = "billing_details"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str | None] = mapped_column(String(255))
    line1: Mapped[str | None] = mapped_column(String(255))
    line2: Mapped[str | None] = mapped_column(String(255))
    city: Mapped[str | None] = mapped_column(String(255))
    postal_code: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str | None] = mapped_column(String(255))
    country: Mapped[str | None] = mapped_column(String(2))
    # Where Stripe sends invoices (the Stripe customer's `email`).
    invoice_email: Mapped[str | None] = mapped_column(String(254))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CustomerTaxId(Base):
    """A tax ID of the customer's, mirrored from Stripe (`customer.tax_id.*` events)."""

    __tablename__ = "customer_tax_ids"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    stripe_tax_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(255))
    country: Mapped[str | None] = mapped_column(String(2))
    # Stripe's verification status (pending, verified, unverified, unavailable) or None.
    verification: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PaymentMethod(Base):
    __tablename__ = "payment_methods"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    stripe_payment_method_id: Mapped[str] = mapped_column(String(255), unique=True)
    # Stripe's `type`: card, sepa_debit, us_bank_account, link, or any other it saves.
    type: Mapped[str] = mapped_column(String(32), default="card", server_default="card")
    brand: Mapped[str] = mapped_column(String(32), default="card")  # a card's brand
    last4: Mapped[str] = mapped_column(String(4), default="")  # card or account number
    exp_month: Mapped[int | None] = mapped_column()
    exp_year: Mapped[int | None] = mapped_column()
    bank_name: Mapped[str | None] = mapped_column(String(255))  # a US bank account's bank
    email: Mapped[str | None] = mapped_column(String(320))  # a Link account's email
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def kind(self) -> str:
        """What it is, for people: "Visa", "SEPA Direct Debit", "US bank account", "Link"."""
        return payment_method_name(self.type, self.brand)

    @property
    def label(self) -> str:
        """How the pages show it: "Visa •••• 4242", "SEPA Direct Debit •••• 3000", "US bank
        account •••• 6789 (STRIPE TEST BANK)", "Link (jenny@example.com)"."""
        if self.type == "link":
            return f"Link ({self.email})" if self.email else "Link"
        text = f"{self.kind} •••• {self.last4}" if self.last4 else self.kind
        return f"{text} ({self.bank_name})" if self.bank_name else text

    @property
    def spoken(self) -> str:
        """The label without the dots, for accessible names: "card ending 4242", "SEPA
        Direct Debit ending 3000", "Link jenny@example.com"."""
        if self.type == "link":
            return f"Link {self.email or ''}".strip()
        kind = "card" if self.type == "card" else self.kind
        return f"{kind} ending {self.last4}" if self.last4 else kind


_TYPE_NAMES = {
    "sepa_debit": "SEPA Direct Debit",
    "us_bank_account": "US bank account",
    "link": "Link",
    "bacs_debit": "Bacs Direct Debit",
    "acss_debit": "Canadian pre-authorized debit",
    "au_becs_debit": "BECS Direct Debit",
}


def payment_method_name(type_: str | None, brand: str | None = None) -> str:
    """A payment method type (a card by its brand; a card brand alone too) as people call
    it: "Visa", "SEPA Direct Debit", "US bank account"."""
    if not type_ or type_ == "card":
        return (brand or "card").replace("_", " ").title()
    return _TYPE_NAMES.get(type_, type_.replace("_", " ").title())


# Auto top-up (the rules: app/billing/auto_top_up.py) ------------------------------------


class AutoTopUp(Base):
    """A customer's auto top-up and low-balance email settings for one meter."""

    __tablename__ = "auto_top_ups"
    __table_args__ = (UniqueConstraint("customer_id", "meter_code"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    meter_code: Mapped[str] = mapped_column(String(64))
    # Auto top-up: below `threshold`, buy `pack_slug`, at most `monthly_cap` (minor units of
    # `currency`) a calendar month (UTC).
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    threshold: Mapped[int] = mapped_column(BigInteger, default=0)
    pack_slug: Mapped[str | None] = mapped_column(String(64))
    monthly_cap: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    armed: Mapped[bool] = mapped_column(Boolean, default=True)
    crossings: Mapped[int] = mapped_column(BigInteger, default=0)
    # Why auto top-up was turned off by the portal (a failed payment), shown until turned on.
    failure: Mapped[str | None] = mapped_column(Text)
    failed_at: Mapped[datetime | None] = mapped_column()
    # The low-balance email.
    alert_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    alert_threshold: Mapped[int] = mapped_column(BigInteger, default=0)
    alert_armed: Mapped[bool] = mapped_column(Boolean, default=True)
    alert_crossings: Mapped[int] = mapped_column(BigInteger, default=0)
    # The balance the last evaluation saw.
    last_balance: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AutoTopUpPurchase(Base):
    """One crossing of an auto top-up's threshold: the pack bought (or why not)."""

    __tablename__ = "auto_top_up_purchases"
    __table_args__ = (
        UniqueConstraint("rule_id", "crossing"),
        Index("ix_auto_top_up_purchases_customer_id", "customer_id", "created_at"),
        Index("ix_auto_top_up_purchases_status", "status", "claimed_until"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("auto_top_ups.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    meter_code: Mapped[str] = mapped_column(String(64))
    crossing: Mapped[int] = mapped_column(BigInteger)
    pack_slug: Mapped[str] = mapped_column(String(64))
    credits: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(BigInteger)  # what the crossing saw
    status: Mapped[str] = mapped_column(String(16))
    # Stripe's idempotency key and the credit grant's transaction id: customer, rule, crossing.
    key: Mapped[str] = mapped_column(String(255), unique=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(BigInteger, default=0)
    claimed_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
