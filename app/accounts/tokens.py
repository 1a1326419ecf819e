"""Single-use, expiring tokens sent by email (password reset, email verification, email change,
and anything else that mails a link: invitations), one table for every purpose.

The link carries a random token (32 bytes, URL-safe); `account_tokens` holds only its SHA-256
(`token_hash`, unique), so a copy of the database lets nobody use a link. A token is for one
`purpose` (a reset link cannot verify an email), expires at `expires_at` and is used at most
once: `consume` marks it used in one conditional UPDATE, so two clicks racing use it once.
Issuing a token of a purpose retires (expires) the user's earlier unused ones of that purpose:
only the newest link works. Functions flush; the caller's service commits.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import AccountToken
from app.lib.clock import as_utc, utcnow

TOKEN_BYTES = 32
# A token is at most this long in a URL (token_urlsafe(32) is 43 characters).
TOKEN_MAX = 64


class Purpose(StrEnum):
    PASSWORD_RESET = "password_reset"  # noqa: S105 (a purpose)
    VERIFY_EMAIL = "verify_email"
    CHANGE_EMAIL = "change_email"


# How long a link works, per purpose (others pass theirs to `issue`).
LIFETIMES: dict[str, timedelta] = {
    Purpose.PASSWORD_RESET: timedelta(hours=1),
    Purpose.VERIFY_EMAIL: timedelta(days=2),
    Purpose.CHANGE_EMAIL: timedelta(hours=24),
}


class TokenState(StrEnum):
    VALID = "valid"
    USED = "used"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_state(row: AccountToken | None, purpose: str, now: datetime) -> TokenState:
    """What a link's row allows at `now`: a row of another purpose is as good as none."""
    if row is None or row.purpose != purpose:
        return TokenState.UNKNOWN
    if row.used_at is not None:
        return TokenState.USED
    if as_utc(row.expires_at) <= now:
        return TokenState.EXPIRED
    return TokenState.VALID


def _plausible(token: str) -> bool:
    return 0 < len(token or "") <= TOKEN_MAX


async def issue(
    session: AsyncSession,
    purpose: str,
    user_id: int,
    *,
    lifetime: timedelta | None = None,
    new_email: str | None = None,
) -> tuple[str, AccountToken]:
    """A new token for `user_id` (the raw token, to mail, and its row); the user's earlier
    unused tokens of this purpose stop working. Flushes."""
    now = utcnow()
    await retire(session, purpose, user_id, now)
    token = new_token()
    row = AccountToken(
        purpose=purpose,
        user_id=user_id,
        token_hash=hash_token(token),
        new_email=new_email,
        created_at=now,
        expires_at=now + (lifetime or LIFETIMES[purpose]),
    )
    session.add(row)
    await session.flush()
    return token, row


async def find(
    session: AsyncSession, purpose: str, token: str
) -> tuple[TokenState, AccountToken | None]:
    """The token's state and row without using it (a link's page before its form is sent)."""
    row = None
    if _plausible(token):
        row = await session.scalar(
            select(AccountToken).where(AccountToken.token_hash == hash_token(token))
        )
    return token_state(row, purpose, utcnow()), row


async def consume(session: AsyncSession, purpose: str, token: str) -> AccountToken | None:
    """Use the token: its row when it was valid (now marked used), else None. One
    conditional UPDATE: of two requests with the same token, one gets the row. Flushes."""
    if not _plausible(token):
        return None
    now = utcnow()
    token_hash = hash_token(token)
    result = await session.execute(
        update(AccountToken)
        .where(
            AccountToken.token_hash == token_hash,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = await session.scalar(
        select(AccountToken)
        .where(AccountToken.token_hash == token_hash)
        .execution_options(populate_existing=True)
    )
    return row


async def retire(
    session: AsyncSession, purpose: str, user_id: int, now: datetime | None = None
) -> None:
    """Stop the user's unused tokens of `purpose` from working (a newer link replaces them; a
    reset link once the password changed another way): they expire now. Flushes."""
    now = now or utcnow()
    await session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
