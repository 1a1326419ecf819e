"""usage at scale: usage_meter_days, every customer's usage per meter and UTC day

The admin overview's usage chart summed `usage_days` over every customer (600,000 rows for
10,000 customers over 30 days: over a second on SQLite). The usage writer now also adds each
batch's usage to a row per (meter, UTC day, shard) (a shard per process, so writers in
different processes never wait for each other on them); the chart sums at most a few rows
per day. Existing roll-ups are summed into shard 0.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime  # noqa: F401

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_meter_days",
        sa.Column("meter_code", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("meter_code", "day", "shard", name=op.f("pk_usage_meter_days")),
    )
    if op.get_bind().dialect.name == "postgresql":
        day = "(starts_at AT TIME ZONE 'UTC')::date"
    else:  # SQLite stores naive UTC text
        day = "date(starts_at)"
    op.execute(
        "INSERT INTO usage_meter_days (meter_code, day, shard, amount) "  # noqa: S608
        f"SELECT meter_code, {day}, 0, SUM(amount) FROM usage_days "
        f"GROUP BY meter_code, {day}"
    )


def downgrade() -> None:
    op.drop_table("usage_meter_days")
