"""Sign up, log in, admins. The service owns its transactions."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.accounts.password_rules import check_new_password
from app.accounts.repository import UserRepository
from app.catalog.models import Catalog
from app.customers.service import CustomerService
from app.db.engine import write_from_here
from app.lib.clock import utcnow
from app.lib.emails import EMAIL_MAX, normalize_email
from app.lib.errors import Conflict, ValidationFailed
from app.lib.passwords import hash_password, verify_password

NAME_MAX = 120
LOGIN_FAILED = "Wrong email or password."


@dataclass(frozen=True)
class SignupInput:
    email: str
    password: str
    name: str = ""
    # The address is known to be theirs (demo users): no verification link needed.
    verified: bool = False


class AccountService:
    def __init__(self, session: AsyncSession, catalog: Catalog) -> None:
        self.session = session
        self.users = UserRepository(session)
        self.customers = CustomerService(session, catalog)

    async def signup(self, data: SignupInput) -> User:
        email = normalize_email(data.email)
        check_new_password(data.password, email)
        name = (data.name or "").strip()
        if len(name) > NAME_MAX:
            raise ValidationFailed(f"Name must be at most {NAME_MAX} characters.", field="name")
        if await self.users.by_email(email) is not None:
            raise Conflict(
                "An account with this email already exists.", code="email_taken", field="email"
            )
        user = User(
            email=email,
            name=name,
            password_hash=hash_password(data.password),
            email_verified_at=utcnow() if data.verified else None,
        )
        await write_from_here(self.session)
        self.users.add(user)
        try:
            await self.session.flush()
            await self.customers.create_for_user(user.id, email, name)
            await self.session.commit()
        except IntegrityError:
            await self.session.rollback()
            raise Conflict(
                "An account with this email already exists.", code="email_taken", field="email"
            ) from None
        return user

    async def authenticate(self, email: str, password: str) -> User | None:
        """The user when the credentials match; None otherwise (same answer for both failures)."""
        user = await self.users.by_email((email or "").strip().lower()[:EMAIL_MAX])
        ok, new_hash = verify_password(password or "", user.password_hash if user else None)
        if user is None or not ok:
            return None
        if new_hash is not None:
            user.password_hash = new_hash
        user.last_login_at = utcnow()
        await self.session.commit()
        return user

    async def get(self, user_id: int) -> User | None:
        return await self.users.by_id(user_id)

    async def email_taken(self, email: str) -> bool:
        return await self.users.by_email(email) is not None

    async def add_passwordless_user(self, email: str, name: str) -> User:
        """A user who logs in only through portal links (no password). Flushes. Verified:
        the SaaS backend that named them through the API vouches for the address."""
        user = User(
            email=email, name=name, password_hash=None, is_admin=False, email_verified_at=utcnow()
        )
        self.users.add(user)
        await self.session.flush()
        return user

    async def ensure_admin(self, email: str, password: str | None) -> tuple[User, str | None]:
        """Create or promote an admin. Returns the user and the password when one was generated."""
        email = normalize_email(email)
        generated = None
        if password is None:
            generated = password = secrets.token_urlsafe(12)
        check_new_password(password, email)
        await write_from_here(self.session)
        user = await self.users.by_email(email)
        if user is None:
            user = User(
                email=email,
                name="Admin",
                password_hash=hash_password(password),
                is_admin=True,
                email_verified_at=utcnow(),  # the operator named the address
            )
            self.users.add(user)
            await self.session.flush()
            await self.customers.create_for_user(user.id, email, "Admin")
        else:
            user.is_admin = True
            user.password_hash = hash_password(password)
            user.email_verified_at = user.email_verified_at or utcnow()
        await self.session.commit()
        return user, generated
