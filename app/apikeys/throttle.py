"""Failed API key lookups per client address: past the limit, 429 without a lookup.

Someone trying keys costs the database a lookup per key it has not seen. After
`API_KEY_FAILURE_LIMIT` failures within `WINDOW_SECONDS` from one address, this process
refuses that address's unknown keys before any lookup, until the window ends. Keys this
process found valid are still looked up (a blocked address may hide a legitimate backend
behind the same proxy), and a cached valid key never reaches this module at all.

The counts are kept in this process, or shared through Redis when `REDIS_URL` is set (a
process that has not blocked an address yet learns of it with its first failure there).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from app.lib.attempts import AttemptCounter
from app.lib.clients import Network

log = structlog.get_logger()
WINDOW_SECONDS = 60
_MAX_BLOCKED = 100_000


@dataclass
class KeyFailures:
    counter: AttemptCounter
    limit: int
    trusted_proxies: Sequence[Network] = ()
    # address -> when its block ends (time.monotonic)
    _blocked: dict[str, float] = field(default_factory=dict)

    def refused(self, address: str) -> int | None:
        """Seconds until `address` may try unknown keys again; None when it may now."""
        ends = self._blocked.get(address)
        if ends is None:
            return None
        left = ends - time.monotonic()
        if left <= 0:
            del self._blocked[address]
            return None
        return max(1, round(left))

    async def failed(self, address: str) -> int | None:
        """Count a failed lookup; seconds to wait when the limit is passed, else None."""
        if self.limit <= 0:
            return None
        try:
            count, retry_after = await self.counter.add(f"api_key:address:{address}")
        except Exception:  # an unreachable Redis must not turn a 401 into a 500
            log.warning("failed API key lookup not counted", exc_info=True)
            return None
        if count >= self.limit:
            if len(self._blocked) >= _MAX_BLOCKED:
                now = time.monotonic()
                self._blocked = {a: t for a, t in self._blocked.items() if t > now}
            self._blocked[address] = time.monotonic() + retry_after
        return retry_after if count > self.limit else None
