"""All SQL for customers and their subscriptions."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer, Subscription


class CustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_external_id(self, external_id: str) -> Customer | None:
        return await self.session.scalar(
            select(Customer).where(Customer.external_id == external_id)
        )

    async def by_id(self, customer_id: int) -> Customer | None:
        return await self.session.get(Customer, customer_id)

    async def by_user_id(self, user_id: int) -> Customer | None:
        return await self.session.scalar(select(Customer).where(Customer.user_id == user_id))

    async def by_stripe_id(self, stripe_customer_id: str) -> Customer | None:
        return await self.session.scalar(
            select(Customer).where(Customer.stripe_customer_id == stripe_customer_id)
        )

    async def by_public_id(self, public_id: str) -> Customer | None:
        return await self.session.scalar(select(Customer).where(Customer.public_id == public_id))

    async def with_stripe_customer(self) -> list[Customer]:
        """Every customer that has a Stripe customer, in id order."""
        query = (
            select(Customer).where(Customer.stripe_customer_id.is_not(None)).order_by(Customer.id)
        )
        return list(await self.session.scalars(query))

    async def subscription_of(self, customer_id: int) -> Subscription | None:
        return await self.session.scalar(
            select(Subscription).where(Subscription.customer_id == customer_id)
        )

    async def subscription_for_update(self, customer_id: int) -> Subscription | None:
        """The customer's subscription row, locked until the transaction ends (PostgreSQL)."""
        return await self.session.scalar(
            select(Subscription).where(Subscription.customer_id == customer_id).with_for_update()
        )

    async def subscription_by_external_id(self, external_id: str) -> Subscription | None:
        return await self.session.scalar(
            select(Subscription).where(Subscription.external_id == external_id)
        )

    async def subscription_by_stripe_id(self, stripe_subscription_id: str) -> Subscription | None:
        return await self.session.scalar(
            select(Subscription).where(
                Subscription.stripe_subscription_id == stripe_subscription_id
            )
        )

    def add(self, *objects: Customer | Subscription) -> None:
        self.session.add_all(objects)


_EXTERNAL_ID_FOR_USER = select(Customer.external_id).where(Customer.user_id == bindparam("user_id"))


def external_id_for_user(conn: Connection, user_id: int) -> str | None:
    """The external id of the user's customer, on a plain connection (the live-usage poll)."""
    value = conn.execute(_EXTERNAL_ID_FOR_USER, {"user_id": user_id}).scalar()
    return None if value is None else str(value)
