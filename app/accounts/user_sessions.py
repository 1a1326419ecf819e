"""The logins (browser sessions) of a user: listed on /account, revocable one by one or all
but the current one, and all at once when the password changes or is reset.

A login's session data (in the session store) holds a random key (`SESSION_KEY`); the
`user_sessions` row holds its SHA-256 (`key_hash`), who, when, from where (address, browser).
`retrieve_user` reads the row with the user in its one statement and refuses a session
whose row is missing or revoked, so a revocation holds in every process at the next request.
`last_seen_at` is written at most once a minute (`TOUCH_EVERY`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Update, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import UserSession
from app.accounts.sessions import session_value
from app.db.engine import write_from_here
from app.db.page_versions import unseen_by_pages
from app.lib.clients import Network, client_address
from app.lib.clock import as_utc, utcnow

SESSION_KEY = "sk"
TOUCH_EVERY = timedelta(minutes=1)
USER_AGENT_MAX = 255


def new_session_key() -> str:
    return secrets.token_urlsafe(24)


def login_key(connection: Any) -> str | None:
    """The key of the login this request's session holds (None: it holds none)."""
    key = session_value(connection, SESSION_KEY)
    return key if isinstance(key, str) else None


def hash_session_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


_BROWSERS = (  # the first match wins: Edge and Opera also say Chrome, Chrome also says Safari
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/|Chromium/")),
    ("Safari", re.compile(r"Safari/")),
    ("curl", re.compile(r"^curl/")),
)
_SYSTEMS = (
    ("Android", re.compile(r"Android")),
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Linux", re.compile(r"Linux|X11")),
)


def describe_user_agent(user_agent: str) -> str:
    """A person's words for a User-Agent: "Firefox on Linux", "Safari on iOS", "Unknown browser"."""
    browser = next((name for name, pattern in _BROWSERS if pattern.search(user_agent)), None)
    system = next((name for name, pattern in _SYSTEMS if pattern.search(user_agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or (f"A browser on {system}" if system else "Unknown browser")


@dataclass(frozen=True)
class SessionView:
    id: int
    created_at: datetime
    last_seen_at: datetime
    browser: str
    ip: str
    current: bool


class SessionRegistry:
    """Rows of `user_sessions`. Methods that change rows commit (each is a user action or
    part of one whose other writes the caller committed before)."""

    def __init__(
        self, session: AsyncSession, max_age: int, trusted_proxies: Sequence[Network] = ()
    ) -> None:
        self.session = session
        self.max_age = timedelta(seconds=max_age)
        self.trusted_proxies = trusted_proxies

    async def open_for(self, scope: Any, user_id: int) -> str:
        """`open` with the request's browser and client address."""
        headers = dict(scope.get("headers") or [])
        user_agent = headers.get(b"user-agent", b"").decode("latin-1")
        return await self.open(user_id, user_agent, client_address(scope, self.trusted_proxies))

    async def open(self, user_id: int, user_agent: str, ip: str) -> str:
        """A new login's key (to keep in the session data); its row is committed."""
        key = new_session_key()
        now = utcnow()
        await write_from_here(self.session)
        self.session.add(
            UserSession(
                user_id=user_id,
                key_hash=hash_session_key(key),
                created_at=now,
                last_seen_at=now,
                user_agent=(user_agent or "")[:USER_AGENT_MAX],
                ip=(ip or "")[:64],
            )
        )
        await self.session.commit()
        return key

    async def close(self, key: str | None) -> None:
        """Revoke the login whose session holds `key` (logout)."""
        if not key:
            return
        await write_from_here(self.session)
        await self.session.execute(
            update(UserSession)
            .where(UserSession.key_hash == hash_session_key(key), UserSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        await self.session.commit()

    async def touch(self, row: UserSession, now: datetime) -> None:
        """Record that the login was seen now, when the last record is a minute old."""
        if now - as_utc(row.last_seen_at) < TOUCH_EVERY:
            return
        with unseen_by_pages():  # only /account shows it, which is never cached
            await write_from_here(self.session)
            await self.session.execute(
                update(UserSession)
                .where(UserSession.id == row.id)
                .values(last_seen_at=now)
                .execution_options(synchronize_session=False)
            )
            await self.session.commit()

    async def active(self, user_id: int, current_key: str | None) -> list[SessionView]:
        """The user's logins that still work, the most recently seen first."""
        now = utcnow()
        rows = await self.session.scalars(
            select(UserSession)
            .where(
                UserSession.user_id == user_id,
                UserSession.revoked_at.is_(None),
                UserSession.created_at > now - self.max_age,
            )
            .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
        )
        current_hash = hash_session_key(current_key) if current_key else None
        return [
            SessionView(
                id=row.id,
                created_at=row.created_at,
                last_seen_at=row.last_seen_at,
                browser=describe_user_agent(row.user_agent),
                ip=row.ip,
                current=row.key_hash == current_hash,
            )
            for row in rows
        ]

    async def revoke(self, user_id: int, session_id: int) -> bool:
        """Log out one of the user's logins (another user's id changes nothing)."""
        await write_from_here(self.session)
        result = await self.session.execute(
            update(UserSession)
            .where(
                UserSession.id == session_id,
                UserSession.user_id == user_id,
                UserSession.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
        await self.session.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def revoke_all(self, user_id: int, *, except_key: str | None = None) -> int:
        """Log out every login of the user but the one holding `except_key`; commits.
        Returns how many were logged out."""
        await write_from_here(self.session)
        result = await self.session.execute(self.revoke_all_statement(user_id, except_key))
        await self.session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def revoke_all_statement(user_id: int, except_key: str | None = None) -> Update:
        """The UPDATE of `revoke_all`, for a service that revokes in its own transaction."""
        statement = update(UserSession).where(
            UserSession.user_id == user_id, UserSession.revoked_at.is_(None)
        )
        if except_key:
            statement = statement.where(UserSession.key_hash != hash_session_key(except_key))
        return statement.values(revoked_at=utcnow())
