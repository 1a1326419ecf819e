"""payment methods: every type Stripe saves (card, SEPA Direct Debit, US bank account, Link),
with the bank's name or the Link account's email for the label

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_methods", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("type", sa.String(length=32), server_default="card", nullable=False)
        )
        batch_op.add_column(sa.Column("bank_name", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("email", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payment_methods", schema=None) as batch_op:
        batch_op.drop_column("email")
        batch_op.drop_column("bank_name")
        batch_op.drop_column("type")
