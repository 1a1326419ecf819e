from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.accounts.models import User, UserSession
from app.customers.models import Customer, Membership


class SignedIn(NamedTuple):
    user: User
    customer: Customer | None  # the current organization's billing account
    role: str | None  # the user's role in it
    organizations: int  # how many the user belongs to
    login: UserSession | None


def _signed_in() -> Select[Any]:
    """`UserRepository.signed_in`'s statement, its values bound: every page request runs it,
    and building and keying it took more CPU than running it."""
    others = aliased(Membership)
    count = select(func.count(others.id)).where(others.user_id == User.id).scalar_subquery()
    return (
        select(User, Customer, Membership.role, count, UserSession)
        .outerjoin(Membership, Membership.user_id == User.id)
        .outerjoin(Customer, Customer.id == Membership.customer_id)
        .outerjoin(
            UserSession,
            (UserSession.user_id == User.id) & (UserSession.key_hash == bindparam("key_hash")),
        )
        .where(User.id == bindparam("user_id"))
        # `current_membership_first`'s order, the organization bound (NULL: none chosen).
        .order_by(case((Membership.customer_id == bindparam("org_id"), 0), else_=1), Membership.id)
        .limit(1)
    )


_SIGNED_IN = _signed_in()


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_email(self, email: str) -> User | None:
        return await self.session.scalar(
            select(User).where(func.lower(User.email) == email.lower())
        )

    async def by_id(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def with_customer(self, user_id: int) -> tuple[User, Customer | None] | None:
        """The user and their first (personal) organization's customer, in one statement."""
        row = (
            await self.session.execute(
                select(User, Customer)
                .outerjoin(Membership, Membership.user_id == User.id)
                .outerjoin(Customer, Customer.id == Membership.customer_id)
                .where(User.id == user_id)
                .order_by(Membership.id)
                .limit(1)
            )
        ).first()
        return (row[0], row[1]) if row is not None else None

    async def signed_in(
        self, user_id: int, key_hash: str, org_id: int | None = None
    ) -> SignedIn | None:
        """The user, the login whose key hashes to `key_hash` (None when the user has no such
        login), and their current organization: `org_id` when they belong to it, else their
        first (personal) one, with their role there and how many they belong to; in one
        statement."""
        row = (
            await self.session.execute(
                _SIGNED_IN, {"user_id": user_id, "key_hash": key_hash, "org_id": org_id}
            )
        ).first()
        if row is None:
            return None
        return SignedIn(row[0], row[1], row[2], int(row[3] or 0), row[4])

    async def organizations(self, user_id: int) -> list[Customer]:
        """The customers (organizations) the user belongs to, the personal one first."""
        return list(
            await self.session.scalars(
                select(Customer)
                .join(Membership, Membership.customer_id == Customer.id)
                .where(Membership.user_id == user_id)
                .order_by(Membership.id)
            )
        )

    def add(self, user: User) -> None:
        self.session.add(user)
