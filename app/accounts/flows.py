"""What a person does with their account: reset a forgotten password, verify their email,
change their email or password. Links go by email through the outbox (app/notifications),
carrying single-use tokens (app/accounts/tokens.py); logins are ended through the session
registry (app/accounts/user_sessions.py). See docs/accounts.md.

Each action owns its transaction (commits, or rolls back when it raises).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import tokens
from app.accounts.emails import (
    EMAIL_CHANGE,
    EMAIL_CHANGE_NOTICE,
    PASSWORD_RESET,
    VERIFY_EMAIL,
    Mailer,
)
from app.accounts.models import AccountToken, User
from app.accounts.password_rules import check_new_password
from app.accounts.repository import UserRepository
from app.accounts.tokens import Purpose, TokenState
from app.accounts.user_sessions import SessionRegistry
from app.customers.models import Customer
from app.customers.service import CustomerService
from app.db.engine import write_from_here
from app.db.transactions import rolls_back_on_error
from app.lib.clock import utcnow
from app.lib.emails import EMAIL_MAX, normalize_email
from app.lib.errors import Conflict, DomainError, ValidationFailed
from app.lib.passwords import hash_password, verify_password

log = structlog.get_logger()

# Gives the Stripe customer the customer's email (BillingService.sync_customer_email).
StripeEmailSync = Callable[[Customer, str], Awaitable[None]]

WRONG_PASSWORD = "Your current password is not right."  # noqa: S105 (a message)
RESET_SENT = (
    "If an account uses this email, we have sent it a link to choose a new password. "
    "The link works for one hour."
)
_LINK_MESSAGES = {
    TokenState.USED: "This link was already used.",
    TokenState.EXPIRED: "This link has expired, or a newer one replaced it.",
    TokenState.UNKNOWN: "This link is not valid.",
}


class LinkRefused(DomainError):
    """A link whose token is used, expired, unknown or of another purpose."""

    status_code = 410
    code = "link_refused"

    def __init__(self, state: TokenState) -> None:
        super().__init__(_LINK_MESSAGES.get(state, _LINK_MESSAGES[TokenState.UNKNOWN]))
        self.state = state
        if state is TokenState.UNKNOWN:
            self.status_code = 404


@dataclass(frozen=True)
class EmailChanged:
    user_id: int
    email: str
    stripe_synced: bool  # False: Stripe could not be told (its copy keeps the old address)


class AccountFlows:
    def __init__(
        self,
        session: AsyncSession,
        customers: CustomerService,
        notifications: Mailer,
        registry: SessionRegistry,
        stripe_email: StripeEmailSync,
    ) -> None:
        self.session = session
        self.users = UserRepository(session)
        self.customers = customers
        self.notifications = notifications
        self.registry = registry
        self.stripe_email = stripe_email

    def _url(self, path: str) -> str:
        return self.notifications.url(path)

    async def _user(self, user_id: int) -> User:
        user = await self.users.by_id(user_id)
        if user is None:
            raise LinkRefused(TokenState.UNKNOWN)
        return user

    async def _valid_token(self, purpose: str, token: str) -> AccountToken:
        state, row = await tokens.find(self.session, purpose, token)
        if state is not TokenState.VALID or row is None:
            raise LinkRefused(state)
        return row

    async def _consume(self, purpose: str, token: str) -> AccountToken:
        row = await tokens.consume(self.session, purpose, token)
        if row is None:  # used or expired since it was read
            state, _ = await tokens.find(self.session, purpose, token)
            raise LinkRefused(state)
        return row

    # Password reset ---------------------------------------------------------------------

    @rolls_back_on_error
    async def request_password_reset(self, email: str) -> str:
        """Mail a reset link when an account uses `email`. The answer (and the work: the
        email is rendered either way) is the same when none does."""
        folded = (email or "").strip().lower()[:EMAIL_MAX]
        user = await self.users.by_email(folded) if folded else None
        customer = await self.customers.for_user(user.id) if user is not None else None
        subject = "Reset your password"
        if user is None or customer is None:
            self.notifications.render(
                PASSWORD_RESET,
                subject,
                {"customer": SimpleNamespace(name=""), "reset_url": self._url("/reset/x")},
            )
            await self.session.rollback()
            return RESET_SENT
        await write_from_here(self.session)
        token, row = await tokens.issue(self.session, Purpose.PASSWORD_RESET, user.id)
        await self.notifications.enqueue(
            dedupe_key=f"password_reset:{row.id}",
            kind=PASSWORD_RESET,
            customer=customer,
            subject=subject,
            context={"reset_url": self._url(f"/reset/{token}")},
            to_address=user.email,
        )
        await self.session.commit()
        return RESET_SENT

    async def check_reset_link(self, token: str) -> None:
        """`LinkRefused` unless the reset link works (its page shows the form)."""
        await self._valid_token(Purpose.PASSWORD_RESET, token)
        await self.session.rollback()

    @rolls_back_on_error
    async def reset_password(self, token: str, password: str) -> User:
        """Set the password of the link's user and log them out everywhere. The link is used
        only when the new password is acceptable. Reading the email proved the address."""
        row = await self._valid_token(Purpose.PASSWORD_RESET, token)
        user = await self._user(row.user_id)
        check_new_password(password, user.email)
        await write_from_here(self.session)
        row = await self._consume(Purpose.PASSWORD_RESET, token)
        user = await self._user(row.user_id)
        user.password_hash = hash_password(password)
        if user.email_verified_at is None:
            user.email_verified_at = utcnow()
        await self.session.execute(SessionRegistry.revoke_all_statement(user.id))
        await self.session.commit()
        return user

    # Email verification -----------------------------------------------------------------

    @rolls_back_on_error
    async def send_verification(self, user_id: int) -> bool:
        """Mail a link confirming the user's email; False when it is verified already."""
        await write_from_here(self.session)
        user = await self._user(user_id)
        customer = await self.customers.for_user(user.id)
        if user.email_verified_at is not None or customer is None:
            await self.session.rollback()
            return False
        token, row = await tokens.issue(
            self.session, Purpose.VERIFY_EMAIL, user.id, new_email=user.email
        )
        await self.notifications.enqueue(
            dedupe_key=f"verify_email:{row.id}",
            kind=VERIFY_EMAIL,
            customer=customer,
            subject="Confirm your email address",
            context={"verify_url": self._url(f"/verify/{token}"), "email": user.email},
            to_address=user.email,
        )
        await self.session.commit()
        return True

    async def link_purpose(self, token: str) -> tuple[Purpose, str]:
        """Which of the `/verify/` links this is (a verification or an email change) and the
        address it confirms."""
        for purpose in (Purpose.VERIFY_EMAIL, Purpose.CHANGE_EMAIL):
            state, row = await tokens.find(self.session, purpose, token)
            if state is TokenState.VALID and row is not None:
                email = row.new_email or ""
                await self.session.rollback()
                return purpose, email
            if state is not TokenState.UNKNOWN:
                raise LinkRefused(state)
        raise LinkRefused(TokenState.UNKNOWN)

    @rolls_back_on_error
    async def verify_email(self, token: str) -> User:
        """Mark the address the link was sent to as verified (if it is still the user's)."""
        await write_from_here(self.session)
        row = await self._consume(Purpose.VERIFY_EMAIL, token)
        user = await self._user(row.user_id)
        if row.new_email and row.new_email != user.email:  # the email changed since
            raise LinkRefused(TokenState.UNKNOWN)
        if user.email_verified_at is None:
            user.email_verified_at = utcnow()
        await self.session.commit()
        return user

    # Change of email --------------------------------------------------------------------

    @rolls_back_on_error
    async def request_email_change(self, user_id: int, password: str, new_email: str) -> str:
        """Mail a confirmation link to the new address and a notice to the current one;
        nothing changes until the link is used. Returns the new address."""
        user = await self._user(user_id)
        if not self._password_ok(user, password):
            raise ValidationFailed(WRONG_PASSWORD, field="current_password")
        email = normalize_email(new_email)
        if email == user.email:
            raise ValidationFailed("This is already your email address.", field="email")
        if await self.users.by_email(email) is not None:
            raise Conflict(
                "Another account uses this email address.", code="email_taken", field="email"
            )
        customer = await self.customers.for_user(user.id)
        if customer is None:
            raise ValidationFailed("This account has no billing account to change.")
        await write_from_here(self.session)
        token, row = await tokens.issue(
            self.session, Purpose.CHANGE_EMAIL, user.id, new_email=email
        )
        context = {
            "new_email": email,
            "old_email": user.email,
            "confirm_url": self._url(f"/verify/{token}"),
        }
        await self.notifications.enqueue(
            dedupe_key=f"email_change:{row.id}",
            kind=EMAIL_CHANGE,
            customer=customer,
            subject="Confirm your new email address",
            context=context,
            to_address=email,
        )
        await self.notifications.enqueue(
            dedupe_key=f"email_change_notice:{row.id}",
            kind=EMAIL_CHANGE_NOTICE,
            customer=customer,
            subject="Your account's email address is being changed",
            context={k: v for k, v in context.items() if k != "confirm_url"},
            to_address=user.email,
        )
        await self.session.commit()
        return email

    @rolls_back_on_error
    async def confirm_email_change(self, token: str) -> EmailChanged:
        """The user's and their customer's email become the link's address (verified), then
        the Stripe customer's (after the commit: a Stripe failure keeps the change)."""
        await write_from_here(self.session)
        row = await self._consume(Purpose.CHANGE_EMAIL, token)
        user = await self._user(row.user_id)
        assert row.new_email is not None
        taken = await self.users.by_email(row.new_email)
        if taken is not None and taken.id != user.id:
            raise Conflict(
                "Another account uses this email address now.", code="email_taken", field="email"
            )
        user.email = row.new_email
        user.email_verified_at = utcnow()
        customer = await self.customers.for_user(user.id)
        if customer is not None:
            customer.email = row.new_email
        await tokens.retire(self.session, Purpose.VERIFY_EMAIL, user.id)
        await self.session.commit()
        synced = True
        if customer is not None and customer.stripe_customer_id:
            try:
                await self.stripe_email(customer, f"token{row.id}")
            except Exception as exc:  # Stripe unreachable or refusing: ours has changed
                log.warning("stripe customer email not updated", error=str(exc))
                synced = False
        return EmailChanged(user.id, user.email, synced)

    # Change of password -----------------------------------------------------------------

    @staticmethod
    def _password_ok(user: User, password: str) -> bool:
        ok, _ = verify_password(password or "", user.password_hash)
        return ok

    @rolls_back_on_error
    async def change_password(
        self, user_id: int, current: str, new: str, *, keep_session_key: str | None
    ) -> int:
        """Set a new password (the current one required) and log out every other login;
        returns how many were logged out."""
        user = await self._user(user_id)
        if not self._password_ok(user, current):
            raise ValidationFailed(WRONG_PASSWORD, field="current_password")
        check_new_password(new, user.email)
        await write_from_here(self.session)
        user = await self._user(user_id)
        user.password_hash = hash_password(new)
        await tokens.retire(self.session, Purpose.PASSWORD_RESET, user.id)
        result = await self.session.execute(
            SessionRegistry.revoke_all_statement(user.id, keep_session_key)
        )
        await self.session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]
