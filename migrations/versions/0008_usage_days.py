"""usage_days: daily usage roll-ups for the charts; drop the usage_events timestamp index

The usage charts (the customer's billing page, the admin dashboard) summed raw events by
timestamp, which grows with every event and cost an index update per event. The metering
writer now keeps a running amount per (customer, meter, UTC day) instead. Existing events are
rolled up by the UTC day of their timestamp (the split at a billing period's start applies to
usage recorded from now on).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_days",
        sa.Column(
            "customer_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("meter_code", sa.String(length=64), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_usage_days_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "customer_id", "meter_code", "starts_at", name=op.f("pk_usage_days")
        ),
    )
    with op.batch_alter_table("usage_days", schema=None) as batch_op:
        batch_op.create_index("ix_usage_days_starts_at", ["starts_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        day = "date_trunc('day', timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    else:  # SQLite stores naive UTC text
        day = "strftime('%Y-%m-%d 00:00:00.000000', timestamp)"
    op.execute(
        "INSERT INTO usage_days (customer_id, meter_code, starts_at, amount) "  # noqa: S608
        f"SELECT customer_id, meter_code, {day}, SUM(amount) FROM usage_events "
        f"GROUP BY customer_id, meter_code, {day}"
    )
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_timestamp")


def downgrade() -> None:
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.create_index("ix_usage_events_timestamp", ["timestamp"], unique=False)
    with op.batch_alter_table("usage_days", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_days_starts_at")
    op.drop_table("usage_days")
