"""API keys for the SaaS backend: created once (shown once), stored as SHA-256, revocable."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.apikeys.models import ApiKey
from app.lib.clock import utcnow
from app.lib.errors import NotFound, ValidationFailed

log = structlog.get_logger()
KEY_PREFIX = "bp_live_"
# A revoked key keeps working for at most this long in a process that has it cached.
CACHE_SECONDS = 5.0
_LAST_USED_EVERY = 60.0


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class AuthenticatedKey:
    id: int
    name: str


class ApiKeyService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, name: str) -> tuple[ApiKey, str]:
        name = (name or "").strip()
        if not name or len(name) > 120:
            raise ValidationFailed("Give the key a name of 1 to 120 characters.", field="name")
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(name=name, prefix=raw[: len(KEY_PREFIX) + 6], key_hash=hash_key(raw))
        self.session.add(key)
        await self.session.commit()
        return key, raw

    async def list(self) -> list[ApiKey]:
        return list(await self.session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc())))

    async def revoke(self, key_id: int) -> ApiKey:
        key = await self.session.get(ApiKey, key_id)
        if key is None:
            raise NotFound("No such API key.")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            await self.session.commit()
        KEY_CACHE.clear()
        return key


class KeyCache:
    """Per-process cache of key lookups, so a hot API path costs no extra query.

    When an entry expires under load, the requests that find it stale share one lookup
    instead of each opening a connection at the same moment.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, AuthenticatedKey | None]] = {}
        self._lookups: dict[str, asyncio.Future[AuthenticatedKey | None]] = {}
        self._last_touch: dict[int, float] = {}

    def clear(self) -> None:
        self._entries.clear()

    async def authenticate(self, engine: AsyncEngine, raw: str) -> AuthenticatedKey | None:
        digest = hash_key(raw)
        now = time.monotonic()
        cached = self._entries.get(digest)
        if cached is not None and cached[0] > now:
            result = cached[1]
        else:
            pending = self._lookups.get(digest)
            if pending is None:
                pending = asyncio.ensure_future(self._lookup(engine, digest))
                self._lookups[digest] = pending
                pending.add_done_callback(lambda _: self._lookups.pop(digest, None))
            # Shielded: a caller that goes away must not cancel the lookup the others wait on.
            result = await asyncio.shield(pending)
        if result is not None and now - self._last_touch.get(result.id, 0.0) > _LAST_USED_EVERY:
            self._last_touch[result.id] = now
            await self._touch(engine, result.id)
        return result

    async def _lookup(self, engine: AsyncEngine, digest: str) -> AuthenticatedKey | None:
        """On a connection of its own, held only for the query: a request waiting on something
        else must never sit on a pooled connection because of auth."""
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(ApiKey.id, ApiKey.name).where(
                        ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)
                    )
                )
            ).first()
        result = AuthenticatedKey(id=row.id, name=row.name) if row else None
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[digest] = (time.monotonic() + CACHE_SECONDS, result)
        return result

    async def _touch(self, engine: AsyncEngine, key_id: int) -> None:
        """`last_used_at`, at most once a minute per key and process."""
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow())
                )
        except Exception:  # an admin hint only; the next request in a minute tries again
            log.warning("api key last_used_at not updated", key_id=key_id, exc_info=True)


KEY_CACHE = KeyCache()
