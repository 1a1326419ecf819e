"""usage events: index (customer_id, id) for a customer's latest events

The (customer_id, created_at) index served no query, while a customer's latest events
(ORDER BY id DESC) were sorted from all of that customer's events on every page view.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 03:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_customer_created")
        batch_op.create_index("ix_usage_events_customer_id", ["customer_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_customer_id")
        batch_op.create_index(
            "ix_usage_events_customer_created", ["customer_id", "created_at"], unique=False
        )
