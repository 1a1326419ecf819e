"""usage_totals.lots_holds_version: bumped by every transaction that changes a slot's credit
lots or holds, so a usage batch written without locks (PostgreSQL) can tell that what it
decided from is unchanged (app/metering/batch_repository.py, `read_slot`)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 21:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_totals") as batch:
        batch.add_column(
            sa.Column("lots_holds_version", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_totals") as batch:
        batch.drop_column("lots_holds_version")
