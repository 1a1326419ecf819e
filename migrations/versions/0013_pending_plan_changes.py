"""subscriptions: a plan change waiting for its payment (Stripe's pending_update);
invoices: when their payment started waiting for the customer (3-D Secure)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_plan_slug", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("pending_interval", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("pending_invoice_id", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("pending_expires_at", UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("action_required_at", UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("action_required_at")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("pending_expires_at")
        batch_op.drop_column("pending_invoice_id")
        batch_op.drop_column("pending_interval")
        batch_op.drop_column("pending_plan_slug")
