"""subscriptions: the scheduled plan change (a downgrade at the period end) and its Stripe
subscription schedule

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_schedule_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("scheduled_plan_slug", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("scheduled_interval", sa.String(length=8), nullable=True))
        batch_op.add_column(
            sa.Column("scheduled_change_at", UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("scheduled_change_at")
        batch_op.drop_column("scheduled_interval")
        batch_op.drop_column("scheduled_plan_slug")
        batch_op.drop_column("stripe_schedule_id")
