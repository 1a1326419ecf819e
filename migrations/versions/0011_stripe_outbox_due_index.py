"""stripe outbox: index (status, created_at) for the sender's claim, oldest usage first

The claim (`WHERE status = 'pending' AND next_attempt_at <= now ORDER BY created_at LIMIT n`)
sorted every pending row on each call under the write lock (20 ms for 100,000 pending rows on
SQLite); with this index it reads the first rows in order. It replaces the index on `status`
alone, which it also serves.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stripe_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_stripe_outbox_status")
        batch_op.create_index(
            "ix_stripe_outbox_status_created_at", ["status", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("stripe_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_stripe_outbox_status_created_at")
        batch_op.create_index("ix_stripe_outbox_status", ["status"], unique=False)
