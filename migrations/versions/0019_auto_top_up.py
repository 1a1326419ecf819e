"""auto top-up: per customer and meter, buy a credit pack when the balance falls below a
threshold (with a monthly cap) and a low-balance email; one purchase row per crossing

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "auto_top_ups",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("meter_code", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("pack_slug", sa.String(length=64), nullable=True),
        sa.Column("monthly_cap", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("armed", sa.Boolean(), nullable=False),
        sa.Column("crossings", sa.BigInteger(), nullable=False),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("failed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("alert_enabled", sa.Boolean(), nullable=False),
        sa.Column("alert_threshold", sa.BigInteger(), nullable=False),
        sa.Column("alert_armed", sa.Boolean(), nullable=False),
        sa.Column("alert_crossings", sa.BigInteger(), nullable=False),
        sa.Column("last_balance", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_auto_top_ups_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auto_top_ups")),
        sa.UniqueConstraint(
            "customer_id", "meter_code", name=op.f("uq_auto_top_ups_customer_id_meter_code")
        ),
    )
    op.create_table(
        "auto_top_up_purchases",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("rule_id", _ID, nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("meter_code", sa.String(length=64), nullable=False),
        sa.Column("crossing", sa.BigInteger(), nullable=False),
        sa.Column("pack_slug", sa.String(length=64), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("claimed_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_auto_top_up_purchases_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["auto_top_ups.id"],
            name=op.f("fk_auto_top_up_purchases_rule_id_auto_top_ups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auto_top_up_purchases")),
        sa.UniqueConstraint("key", name=op.f("uq_auto_top_up_purchases_key")),
        sa.UniqueConstraint(
            "rule_id", "crossing", name=op.f("uq_auto_top_up_purchases_rule_id_crossing")
        ),
    )
    op.create_index(
        "ix_auto_top_up_purchases_customer_id",
        "auto_top_up_purchases",
        ["customer_id", "created_at"],
    )
    op.create_index(
        "ix_auto_top_up_purchases_status",
        "auto_top_up_purchases",
        ["status", "claimed_until"],
    )


def downgrade() -> None:
    op.drop_index("ix_auto_top_up_purchases_status", table_name="auto_top_up_purchases")
    op.drop_index("ix_auto_top_up_purchases_customer_id", table_name="auto_top_up_purchases")
    op.drop_table("auto_top_up_purchases")
    op.drop_table("auto_top_ups")
