from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigIntPK
from app.db.changes import API_KEYS, track
from app.lib.clock import utcnow

# The Stripe mode a key was made in (app/apikeys/service.py, `key_prefix`).
LIVE_PREFIX = "bp_live_"
TEST_PREFIX = "bp_test_"


class ApiKey(Base):
    """A server-to-server key; only its SHA-256 is stored (keys are 256-bit random)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    @property
    def mode(self) -> str:
        """ "test" or "live": the Stripe mode the key was made in, by its prefix."""
        return "test" if self.prefix.startswith(TEST_PREFIX) else "live"


# Every process drops a key it cached as soon as a change to it (a revocation) commits.
track(ApiKey, API_KEYS, lambda key: key.key_hash)
