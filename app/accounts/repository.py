from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.customers.models import Customer


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
        """The user and their customer (a user has at most one), in one statement."""
        row = (
            await self.session.execute(
                select(User, Customer)
                .outerjoin(Customer, Customer.user_id == User.id)
                .where(User.id == user_id)
            )
        ).first()
        return (row[0], row[1]) if row is not None else None

    def add(self, user: User) -> None:
        self.session.add(user)
