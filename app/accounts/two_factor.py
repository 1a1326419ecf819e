"""Two-factor login (TOTP) for any user: enrol, confirm, check a code, turn off.

The rules of codes are in app/accounts/totp.py; this service stores them and owns the
transactions. A code (or a recovery code) is consumed by one conditional UPDATE, so two
requests carrying the same code cannot both succeed, on SQLite or PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import RecoveryCode, TwoFactor, User
from app.accounts.totp import (
    SecretBox,
    grouped,
    hash_recovery_code,
    looks_like_totp,
    matching_step,
    new_recovery_codes,
    new_secret,
    provisioning_uri,
    qr_svg,
)
from app.db.engine import write_from_here
from app.db.transactions import rolls_back_on_error
from app.lib.clock import utcnow
from app.lib.errors import Conflict, ValidationFailed
from app.lib.passwords import verify_password

WRONG_CODE = "That code is not right, or was already used. Try the current one."
CREDENTIALS_WRONG = "Your password is not right."
ISSUER = "Billing Portal"

CodeKind = Literal["totp", "recovery"]


@dataclass(frozen=True)
class TwoFactorStatus:
    on: bool
    recovery_codes_left: int = 0
    enabled_at: datetime | None = None


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the secret as text and as a QR code."""

    secret: str
    uri: str
    qr_svg: str

    @property
    def secret_grouped(self) -> str:
        return grouped(self.secret)


async def has_two_factor(session: AsyncSession, user_id: int) -> bool:
    """Whether the user has two-factor login on (confirmed)."""
    confirmed = await session.scalar(
        select(TwoFactor.confirmed_at).where(TwoFactor.user_id == user_id)
    )
    return confirmed is not None


class TwoFactorService:
    def __init__(self, session: AsyncSession, secret_key: str, issuer: str = ISSUER) -> None:
        self.session = session
        self.box = SecretBox.from_secret_key(secret_key)
        self.issuer = issuer

    # Reads ------------------------------------------------------------------------------

    async def _row(self, user_id: int) -> TwoFactor | None:
        return await self.session.get(TwoFactor, user_id, populate_existing=True)

    async def is_on(self, user_id: int) -> bool:
        return await has_two_factor(self.session, user_id)

    async def status(self, user_id: int) -> TwoFactorStatus:
        row = await self._row(user_id)
        if row is None or row.confirmed_at is None:
            return TwoFactorStatus(on=False)
        left = await self.session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        )
        return TwoFactorStatus(on=True, recovery_codes_left=left or 0, enabled_at=row.confirmed_at)

    async def pending_enrolment(self, user_id: int, account: str) -> Enrolment | None:
        """The enrolment started and not confirmed yet, if any."""
        row = await self._row(user_id)
        if row is None or row.confirmed_at is not None:
            return None
        secret = self.box.open(row.secret_encrypted)
        return self._enrolment(secret, account) if secret else None

    def _enrolment(self, secret: str, account: str) -> Enrolment:
        uri = provisioning_uri(secret, account, self.issuer)
        return Enrolment(secret=secret, uri=uri, qr_svg=qr_svg(uri))

    # Enrolment --------------------------------------------------------------------------

    @rolls_back_on_error
    async def start_enrolment(self, user_id: int, account: str) -> Enrolment:
        """A new secret, stored (encrypted) unconfirmed: two-factor login is not on until a
        code from it is confirmed. Starting again replaces an unconfirmed secret."""
        await write_from_here(self.session)
        row = await self._row(user_id)
        if row is not None and row.confirmed_at is not None:
            raise Conflict("Two-factor login is already on.", code="two_factor_on")
        secret = new_secret()
        if row is None:
            self.session.add(TwoFactor(user_id=user_id, secret_encrypted=self.box.seal(secret)))
        else:
            row.secret_encrypted = self.box.seal(secret)
            row.last_used_step = 0
            row.created_at = utcnow()
        await self.session.commit()
        return self._enrolment(secret, account)

    @rolls_back_on_error
    async def confirm(self, user_id: int, code: str, now: datetime | None = None) -> list[str]:
        """Turn two-factor login on with a current code from the new secret; returns the
        recovery codes (in clear, this once)."""
        now = now or utcnow()
        await write_from_here(self.session)
        row = await self._row(user_id)
        if row is None or row.confirmed_at is not None:
            raise Conflict("There is no two-factor setup waiting to be confirmed.")
        secret = self.box.open(row.secret_encrypted)
        step = matching_step(secret, code, now, row.last_used_step) if secret else None
        if step is None:
            raise ValidationFailed(WRONG_CODE, code="wrong_code", field="code")
        row.confirmed_at = now
        row.last_used_step = step
        codes = await self._replace_recovery_codes(user_id)
        await self.session.commit()
        return codes

    async def _replace_recovery_codes(self, user_id: int) -> list[str]:
        await self.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        codes = new_recovery_codes()
        self.session.add_all(
            RecoveryCode(user_id=user_id, code_hash=hash_recovery_code(code)) for code in codes
        )
        await self.session.flush()
        return codes

    # Checking a code --------------------------------------------------------------------

    @rolls_back_on_error
    async def use_code(
        self, user_id: int, code: str, now: datetime | None = None
    ) -> CodeKind | None:
        """Consume `code` (a current TOTP code not used before, or an unused recovery code)
        and commit; None when it is neither (or two-factor login is off)."""
        now = now or utcnow()
        await write_from_here(self.session)
        row = await self._row(user_id)
        if row is None or row.confirmed_at is None:
            await self.session.rollback()
            return None
        if looks_like_totp(code):
            secret = self.box.open(row.secret_encrypted)
            step = matching_step(secret, code, now, row.last_used_step) if secret else None
            if step is None:
                await self.session.rollback()
                return None
            used = await self.session.execute(
                update(TwoFactor)
                .where(TwoFactor.user_id == user_id, TwoFactor.last_used_step < step)
                .values(last_used_step=step)
            )
            kind: CodeKind = "totp"
        else:
            used = await self.session.execute(
                update(RecoveryCode)
                .where(
                    RecoveryCode.user_id == user_id,
                    RecoveryCode.code_hash == hash_recovery_code(code),
                    RecoveryCode.used_at.is_(None),
                )
                .values(used_at=now)
            )
            kind = "recovery"
        await self.session.commit()
        return kind if used.rowcount == 1 else None  # type: ignore[attr-defined]

    async def check_code_if_on(self, user_id: int, code: str) -> None:
        """For an action that asks for the code when two-factor login is on (turning it off,
        deleting the account): ValidationFailed unless it is off or `code` is good."""
        if await self.is_on(user_id) and await self.use_code(user_id, code) is None:
            raise ValidationFailed(WRONG_CODE, code="wrong_code", field="code")

    # Turning it off ---------------------------------------------------------------------

    @rolls_back_on_error
    async def disable(self, user_id: int, password: str, code: str) -> None:
        """Turn two-factor login off: the password and a code (or a recovery code) first."""
        user = await self.session.get(User, user_id)
        ok, _ = verify_password(password or "", user.password_hash if user else None)
        if not ok:
            raise ValidationFailed(CREDENTIALS_WRONG, code="wrong_password", field="password")
        if not await self.is_on(user_id):
            await self.session.rollback()
            return
        if await self.use_code(user_id, code) is None:
            raise ValidationFailed(WRONG_CODE, code="wrong_code", field="code")
        await write_from_here(self.session)
        await self.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        await self.session.execute(delete(TwoFactor).where(TwoFactor.user_id == user_id))
        await self.session.commit()

    @rolls_back_on_error
    async def new_recovery_codes(self, user_id: int, code: str) -> list[str]:
        """Replace the recovery codes (the old ones stop working) after a code."""
        if await self.use_code(user_id, code) is None:
            raise ValidationFailed(WRONG_CODE, code="wrong_code", field="code")
        await write_from_here(self.session)
        codes = await self._replace_recovery_codes(user_id)
        await self.session.commit()
        return codes
