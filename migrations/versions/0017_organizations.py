"""organizations: memberships with roles, invitations; every existing user owns a personal organization

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

from app.db.base import UTCDateTime  # noqa: F401

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
