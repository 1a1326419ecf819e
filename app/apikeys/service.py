"""API keys for the SaaS backend: created once (shown once), stored as SHA-256, revocable.

A key says which Stripe mode it was made in, as Stripe's own keys do: `bp_test_` while the
portal runs against the emulator or a Stripe test key, `bp_live_` with a live one. The prefix
is a label for people (the key list's Test/Live badge, a glance at a config file): a key is
looked up by the hash of all of it, so either prefix works in any mode, and keys made before
test keys existed (all `bp_live_`) keep working.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.apikeys.models import LIVE_PREFIX, TEST_PREFIX, ApiKey
from app.db.engine import write_from_here
from app.db.page_versions import unseen_by_pages
from app.lib.clock import utcnow
from app.lib.errors import NotFound, ValidationFailed

log = structlog.get_logger()
# A revocation reaches every process at once (app/db/changes.py); only a process that missed
# it (PostgreSQL: its listening connection lost) keeps a revoked key working, this long at most.
CACHE_SECONDS = 5.0
_LAST_USED_EVERY = 60.0


def key_prefix(stripe_secret_key: str | None) -> str:
    """`bp_live_` only when the portal charges through Stripe with a live key (`sk_live_…`,
    or a restricted `rk_live_…`); `bp_test_` with the emulator (no key) or a test key."""
    live = (stripe_secret_key or "").strip().startswith(("sk_live_", "rk_live_"))
    return LIVE_PREFIX if live else TEST_PREFIX


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class AuthenticatedKey:
    id: int
    name: str


class ApiKeyService:
    def __init__(self, session: AsyncSession, prefix: str = TEST_PREFIX) -> None:
        """`prefix`: the one new keys get, `key_prefix(settings.stripe_secret_key)`."""
        self.session = session
        self.prefix = prefix

    async def create(self, name: str) -> tuple[ApiKey, str]:
        name = (name or "").strip()
        if not name or len(name) > 120:
            raise ValidationFailed("Give the key a name of 1 to 120 characters.", field="name")
        raw = self.prefix + secrets.token_urlsafe(32)
        key = ApiKey(name=name, prefix=raw[: len(self.prefix) + 6], key_hash=hash_key(raw))
        await write_from_here(self.session)
        self.session.add(key)
        await self.session.commit()
        return key, raw

    async def list(self) -> list[ApiKey]:
        return list(await self.session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc())))

    async def revoke(self, key_id: int) -> ApiKey:
        await write_from_here(self.session)
        key = await self.session.get(ApiKey, key_id)
        if key is None:
            raise NotFound("No such API key.")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            await self.session.commit()  # announced to every process (ApiKey is tracked)
        KEY_CACHE.forget(key.key_hash)
        return key


class KeyCache:
    """Per-process cache of key lookups, so a hot API path costs no extra query.

    When an entry expires under load, the requests that find it stale share one lookup
    instead of each opening a connection at the same moment. A revoked key is dropped at once
    in every process through app/db/changes.py (`forget`); the expiry is only a safety net.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, AuthenticatedKey | None]] = {}
        self._lookups: dict[str, asyncio.Future[AuthenticatedKey | None]] = {}
        self._last_touch: dict[int, float] = {}

    def clear(self) -> None:
        self._entries.clear()

    def forget(self, digest: str | None) -> None:
        """Drop one key's entry (by its hash), or all of them (None)."""
        if digest is None:
            self._entries.clear()
        else:
            self._entries.pop(digest, None)

    def cached(self, digest: str) -> AuthenticatedKey | None:
        """The key when it is cached as valid and fresh: the hot path, no I/O."""
        entry = self._entries.get(digest)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return None

    def was_valid(self, digest: str) -> bool:
        """This process found the key valid, recently or not, and was not told it changed."""
        entry = self._entries.get(digest)
        return entry is not None and entry[1] is not None

    async def authenticate(self, engine: AsyncEngine, raw: str) -> AuthenticatedKey | None:
        digest = hash_key(raw)
        return self.cached(digest) or await self.look_up(engine, digest)

    async def look_up(self, engine: AsyncEngine, digest: str) -> AuthenticatedKey | None:
        """From a fresh entry (an unknown key is cached too) or one lookup shared by all the
        requests that ask at the same time."""
        cached = self._entries.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._lookups.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(engine, digest))
            self._lookups[digest] = pending
            pending.add_done_callback(lambda _: self._lookups.pop(digest, None))
        # Shielded: a caller that goes away must not cancel the lookup the others wait on.
        return await asyncio.shield(pending)

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
        now = time.monotonic()
        self._entries[digest] = (now + CACHE_SECONDS, result)
        # `last_used_at`, at most once a minute per key and process: a key in use is looked up
        # again every CACHE_SECONDS, so the cached hot path never pays for it.
        if result is not None and now - self._last_touch.get(result.id, 0.0) > _LAST_USED_EVERY:
            self._last_touch[result.id] = now
            await self.touch(engine, result.id)
        return result

    async def touch(self, engine: AsyncEngine, key_id: int) -> None:
        try:
            # No cached page shows it (the admin's key list is rendered each time): a key's
            # first use in a minute must not end every customer's cached page.
            with unseen_by_pages():
                async with engine.begin() as conn:
                    await conn.execute(
                        update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow())
                    )
        except Exception:  # an admin hint only; the next request in a minute tries again
            log.warning("api key last_used_at not updated", key_id=key_id, exc_info=True)


KEY_CACHE = KeyCache()
