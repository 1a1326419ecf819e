"""billing details (name, address, tax ids, invoice email) mirrored from the Stripe customer

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A customer without a row has no billing details yet: nothing to fill in for existing ones.
    op.create_table(
        "billing_details",
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("line1", sa.String(length=255), nullable=True),
        sa.Column("line2", sa.String(length=255), nullable=True),
        sa.Column("city", sa.String(length=255), nullable=True),
        sa.Column("postal_code", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=255), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("invoice_email", sa.String(length=254), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_billing_details_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_billing_details")),
    )
    op.create_table(
        "customer_tax_ids",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("stripe_tax_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("verification", sa.String(length=16), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_tax_ids_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_tax_ids")),
        sa.UniqueConstraint("stripe_tax_id", name=op.f("uq_customer_tax_ids_stripe_tax_id")),
    )
    with op.batch_alter_table("customer_tax_ids", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_tax_ids_customer_id"), ["customer_id"], unique=False
        )
    # Invoices mirrored before this keep `billed_to` empty until their next event.
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("billed_to", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("billed_to")
    with op.batch_alter_table("customer_tax_ids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_tax_ids_customer_id"))
    op.drop_table("customer_tax_ids")
    op.drop_table("billing_details")
