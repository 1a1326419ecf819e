"""Login and signup throttling: failed logins per account and per client address.

Only failures count, so a person who types their password right is never slowed down by
their own earlier typos once they succeed, nor by someone else's failures on another account.
Three counters, each over `LOGIN_WINDOW` seconds (`limit` is `LOGIN_RATE_LIMIT`):

- one account from one address: `limit` failures (a person guessing at one account);
- one account from any address: 5 x `limit` (guessing spread over many addresses);
- one address over all accounts: 10 x `limit` (one client trying many accounts). Behind a
  proxy, set `TRUSTED_PROXIES` so each person has their own address.

Signups count every attempt per address: `SIGNUPS_PER_ADDRESS` per window.

Emails with a link (a password reset, a verification sent again, an email change) count
every request, per purpose: `LINKS_PER_ACCOUNT` per account (the address typed, or the
logged-in user's) and `LINKS_PER_ADDRESS` per client address in a window. A reset request
for an unknown email counts the same as for a known one, so the answer tells nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.lib.attempts import AttemptCounter
from app.lib.clients import Network, client_address
from app.lib.emails import EMAIL_MAX

LOGIN_WINDOW = 15 * 60
ACCOUNT_FACTOR = 5
ADDRESS_FACTOR = 10
SIGNUPS_PER_ADDRESS = 20
# New guests the demo's /try page makes for one address (app/billing/guest_pages.py).
GUESTS_PER_ADDRESS = 20
LINKS_PER_ACCOUNT = 3
LINKS_PER_ADDRESS = 20


@dataclass(frozen=True)
class Throttled:
    """Refused for now; try again in `retry_after` seconds."""

    retry_after: int

    @property
    def message(self) -> str:
        minutes = max(1, -(-self.retry_after // 60))
        unit = "minute" if minutes == 1 else "minutes"
        return f"Too many attempts. Try again in {minutes} {unit}."


def _account(email: str) -> str:
    # Hashed: the store (Redis) never holds the email addresses people typed.
    folded = (email or "").strip().lower()[:EMAIL_MAX]
    return hashlib.sha256(folded.encode()).hexdigest()[:32]


class LoginThrottle:
    def __init__(
        self, counter: AttemptCounter, limit: int, trusted_proxies: Sequence[Network] = ()
    ) -> None:
        self.counter = counter
        self.limit = limit
        self.trusted_proxies = trusted_proxies

    def address(self, scope: Any) -> str:
        return client_address(scope, self.trusted_proxies)

    def _keys(self, email: str, address: str) -> list[tuple[str, int]]:
        account = _account(email)
        return [
            (f"login:pair:{account}:{address}", self.limit),
            (f"login:account:{account}", self.limit * ACCOUNT_FACTOR),
            (f"login:address:{address}", self.limit * ADDRESS_FACTOR),
        ]

    async def check_login(self, email: str, address: str) -> Throttled | None:
        waits = []
        for key, limit in self._keys(email, address):
            count, retry_after = await self.counter.count(key)
            if count >= limit:
                waits.append(retry_after)
        return Throttled(max(waits)) if waits else None

    async def login_failed(self, email: str, address: str) -> None:
        for key, _limit in self._keys(email, address):
            await self.counter.add(key)

    async def login_succeeded(self, email: str, address: str) -> None:
        await self.counter.clear(self._keys(email, address)[0][0])

    async def signup_attempt(self, address: str) -> Throttled | None:
        """Count a signup; `Throttled` when this address has tried too many."""
        key = f"signup:address:{address}"
        count, retry_after = await self.counter.count(key)
        if count >= SIGNUPS_PER_ADDRESS:
            return Throttled(retry_after)
        await self.counter.add(key)
        return None

    async def guest_attempt(self, address: str) -> Throttled | None:
        """Count a new guest for a visitor; `Throttled` when this address made too many."""
        key = f"guest:address:{address}"
        count, retry_after = await self.counter.count(key)
        if count >= GUESTS_PER_ADDRESS:
            return Throttled(retry_after)
        await self.counter.add(key)
        return None

    async def email_link_attempt(self, purpose: str, email: str, address: str) -> Throttled | None:
        """Count a request for an email with a link (`purpose`: "reset", "verify",
        "email_change") to the account `email`; `Throttled` when the account or this
        address asked too often (a refused request is not counted)."""
        keys = [
            (f"{purpose}:account:{_account(email)}", LINKS_PER_ACCOUNT),
            (f"{purpose}:address:{address}", LINKS_PER_ADDRESS),
        ]
        waits = []
        for key, limit in keys:
            count, retry_after = await self.counter.count(key)
            if count >= limit:
                waits.append(retry_after)
        if waits:
            return Throttled(max(waits))
        for key, _limit in keys:
            await self.counter.add(key)
        return None
