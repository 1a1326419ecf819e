"""What signup does with a guest token (`/signup?guest=...`): the usage a visitor had as a
guest is carried over to the new account. The work is billing's (app/billing/guest_pages.py),
injected here as `guest_claim`, so accounts stays below billing and metering."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

# The /try page's cookie holding the visitor's signed guest token; signup clears it.
GUEST_COOKIE = "guest"


@runtime_checkable  # Litestar checks a dependency's type
class GuestClaim(Protocol):
    async def claim(self, token: str, user_id: int) -> tuple[bool, str]:
        """Carry the signed guest's usage over to the user's billing account: (done, the
        message to show). Never raises for a bad or used token: the account stands."""
        ...
