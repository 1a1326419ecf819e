"""Login and signup throttling: failed logins per account and per client address.

Only failures count, so a person who types their password right is never slowed down by
their own earlier typos once they succeed, nor by someone else's failures on another account.
Three counters, each over `LOGIN_WINDOW` seconds (`limit` is `LOGIN_RATE_LIMIT`):

- one account from one address: `limit` failures (a person guessing at one account);
- one account from any address: 5 x `limit` (guessing spread over many addresses);
- one address over all accounts: 10 x `limit` (one client trying many accounts). Behind a
  proxy, set `TRUSTED_PROXIES` so each person has their own address.

Wrong two-factor codes count the same way, per user (`CodeThrottle`).

Signups count every attempt per address: `SIGNUPS_PER_ADDRESS` per window.

Emails with a link (a password reset, a verification sent again, an email change) count
every request, per purpose: `LINKS_PER_ACCOUNT` per account (the address typed, or the
logged-in user's) and `LINKS_PER_ADDRESS` per client address in a window. A reset request
for an unknown email counts the same as for a known one, so the answer tells nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from app.lib.attempts import AttemptCounter
from app.lib.clients import Network, client_address
from app.lib.emails import EMAIL_MAX
from app.lib.errors import DomainError

LOGIN_WINDOW = 15 * 60
ACCOUNT_FACTOR = 5
ADDRESS_FACTOR = 10
SIGNUPS_PER_ADDRESS = 20
# New guests the demo's /try page makes for one address (app/billing/guest_pages.py).
GUESTS_PER_ADDRESS = 20
LINKS_PER_ACCOUNT = 3
LINKS_PER_ADDRESS = 20
T = TypeVar("T")


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


def _tiers(kind: str, who: str, whose: str, address: str, limit: int) -> list[tuple[str, int]]:
    """The three failure counters of a secret guessed at (a password, a two-factor code) and
    their limits: `whose` from this address, `whose` from anywhere, this address overall."""
    return [
        (f"{kind}:pair:{whose}:{address}", limit),
        (f"{kind}:{who}:{whose}", limit * ACCOUNT_FACTOR),
        (f"{kind}:address:{address}", limit * ADDRESS_FACTOR),
    ]


async def _at_limit(counter: AttemptCounter, keys: list[tuple[str, int]]) -> Throttled | None:
    """`Throttled` for the longest wait among the counters at their limit; None when none is."""
    waits = []
    for key, limit in keys:
        count, retry_after = await counter.count(key)
        if count >= limit:
            waits.append(retry_after)
    return Throttled(max(waits)) if waits else None


async def _count_each(counter: AttemptCounter, keys: list[tuple[str, int]]) -> None:
    for key, _limit in keys:
        await counter.add(key)


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
        return _tiers("login", "account", _account(email), address, self.limit)

    async def check_login(self, email: str, address: str) -> Throttled | None:
        return await _at_limit(self.counter, self._keys(email, address))

    async def login_failed(self, email: str, address: str) -> None:
        await _count_each(self.counter, self._keys(email, address))

    async def login_succeeded(self, email: str, address: str) -> None:
        await self.counter.clear(self._keys(email, address)[0][0])

    async def _attempt(self, keys: list[tuple[str, int]]) -> Throttled | None:
        """Count an attempt under each of `keys`, unless one is at its limit: then
        `Throttled`, and the refused attempt is not counted."""
        throttled = await _at_limit(self.counter, keys)
        if throttled is None:
            await _count_each(self.counter, keys)
        return throttled

    async def signup_attempt(self, address: str) -> Throttled | None:
        """Count a signup; `Throttled` when this address has tried too many."""
        return await self._attempt([(f"signup:address:{address}", SIGNUPS_PER_ADDRESS)])

    async def guest_attempt(self, address: str) -> Throttled | None:
        """Count a new guest for a visitor; `Throttled` when this address made too many."""
        return await self._attempt([(f"guest:address:{address}", GUESTS_PER_ADDRESS)])

    async def email_link_attempt(self, purpose: str, email: str, address: str) -> Throttled | None:
        """Count a request for an email with a link (`purpose`: "reset", "verify",
        "email_change") to the account `email`; `Throttled` when the account or this
        address asked too often (a refused request is not counted)."""
        return await self._attempt(
            [
                (f"{purpose}:account:{_account(email)}", LINKS_PER_ACCOUNT),
                (f"{purpose}:address:{address}", LINKS_PER_ADDRESS),
            ]
        )


class CodeThrottle:
    """Wrong two-factor codes, counted like failed logins: per user from one address
    (`limit`), per user from anywhere (5 x), per address (10 x), in the login window."""

    def __init__(self, login_throttle: LoginThrottle) -> None:
        self.counter = login_throttle.counter
        self.limit = login_throttle.limit
        self.login_throttle = login_throttle

    def _keys(self, user_id: int, address: str) -> list[tuple[str, int]]:
        return _tiers("2fa", "user", str(user_id), address, self.limit)

    async def check(self, user_id: int, scope: Any) -> Throttled | None:
        return await _at_limit(
            self.counter, self._keys(user_id, self.login_throttle.address(scope))
        )

    async def failed(self, user_id: int, scope: Any) -> None:
        await _count_each(self.counter, self._keys(user_id, self.login_throttle.address(scope)))

    async def succeeded(self, user_id: int, scope: Any) -> None:
        await self.counter.clear(self._keys(user_id, self.login_throttle.address(scope))[0][0])

    async def run(self, user_id: int, scope: Any, action: Callable[[], Awaitable[T]]) -> T:
        """`action()` unless throttled (then `TooManyCodes`); a `DomainError` it raises (a
        wrong code or password) is counted as a failure."""
        throttled = await self.check(user_id, scope)
        if throttled is not None:
            raise TooManyCodes(throttled.message, retry_after=throttled.retry_after)
        try:
            return await action()
        except DomainError:
            await self.failed(user_id, scope)
            raise


class TooManyCodes(DomainError):
    status_code = 429
    code = "rate_limited"
