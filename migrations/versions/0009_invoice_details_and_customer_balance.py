"""invoice details (lines, amounts, balance applied, payment, refunds and credit notes) and the
customer's Stripe credit balance

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_INVOICE_AMOUNTS = (
    "subtotal",
    "tax",
    "discount",
    "starting_balance",
    "amount_refunded",
    "amount_credited",
)

_LOWER_INDEXED = ("email", "name")  # the admin search's expression indexes (0005)


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stripe_balance", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("stripe_balance_currency", sa.String(length=3), nullable=True)
        )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("billing_reason", sa.String(length=40), nullable=True))
        for name in _INVOICE_AMOUNTS:
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)
            )
        batch_op.add_column(sa.Column("ending_balance", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("lines", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("stripe_payment_intent_id", sa.String(length=255), nullable=True)
        )
        batch_op.add_column(sa.Column("payment_brand", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("payment_last4", sa.String(length=4), nullable=True))
        batch_op.create_index(
            "ix_invoices_stripe_payment_intent_id", ["stripe_payment_intent_id"], unique=False
        )
    # Existing rows: the subtotal was not kept; the total is the best figure there is.
    op.execute("UPDATE invoices SET subtotal = total")


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_stripe_payment_intent_id")
        for name in (
            "payment_last4",
            "payment_brand",
            "stripe_payment_intent_id",
            "lines",
            "ending_balance",
            *reversed(_INVOICE_AMOUNTS),
            "billing_reason",
        ):
            batch_op.drop_column(name)
    # SQLite drops columns by copying the table, which loses expression indexes: put them back.
    for column in _LOWER_INDEXED:
        op.drop_index(f"ix_customers_{column}_lower", table_name="customers")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("stripe_balance_currency")
        batch_op.drop_column("stripe_balance")
    for column in _LOWER_INDEXED:
        op.create_index(
            f"ix_customers_{column}_lower", "customers", [sa.text(f"lower({column})")], unique=False
        )
