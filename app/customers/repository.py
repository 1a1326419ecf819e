"""All SQL for customers and their subscriptions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, case, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer, Membership, Subscription


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
        """The customer `user_id` created (their personal organization), member or not."""
        return await self.session.scalar(select(Customer).where(Customer.user_id == user_id))

    async def current_for_member(
        self, user_id: int, org_id: int | None = None
    ) -> tuple[Customer, str] | None:
        """The organization `org_id` and the user's role in it when they belong to it, else
        their first (personal) one; None when they belong to none."""
        row = (
            await self.session.execute(
                select(Customer, Membership.role)
                .join(Membership, Membership.customer_id == Customer.id)
                .where(Membership.user_id == user_id)
                .order_by(*current_membership_first(org_id))
                .limit(1)
            )
        ).first()
        return (row[0], row[1]) if row is not None else None

    async def role_of(self, customer_id: int, user_id: int) -> str | None:
        return await self.session.scalar(
            select(Membership.role).where(
                Membership.customer_id == customer_id, Membership.user_id == user_id
            )
        )

    async def first_owner(self, customer_id: int) -> int | None:
        return await self.session.scalar(
            select(Membership.user_id)
            .where(Membership.customer_id == customer_id, Membership.role == "owner")
            .order_by(Membership.id)
            .limit(1)
        )

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

    def add(self, *objects: Customer | Subscription | Membership) -> None:
        self.session.add_all(objects)


def current_membership_first(org_id: int | None) -> tuple[ColumnElement[Any], ...]:
    """The order of a user's memberships that puts the session's current organization
    (`org_id`) first, then the oldest (the personal organization signup made): the first row is
    the organization every page of the request is scoped to."""
    first: ColumnElement[Any] = case((Membership.customer_id == org_id, 0), else_=1)
    return (Membership.id.expression,) if org_id is None else (first, Membership.id.expression)


_EXTERNAL_ID_FOR_MEMBER = (
    select(Customer.external_id)
    .join(Membership, Membership.customer_id == Customer.id)
    .where(Membership.user_id == bindparam("user_id"))
    .order_by(case((Membership.customer_id == bindparam("org_id"), 0), else_=1), Membership.id)
    .limit(1)
)


def external_id_for_member(conn: Connection, user_id: int, org_id: int | None) -> str | None:
    """The external id of the user's current organization (as `current_for_member` picks it),
    on a plain connection (the live-usage poll)."""
    value = conn.execute(_EXTERNAL_ID_FOR_MEMBER, {"user_id": user_id, "org_id": org_id}).scalar()
    return None if value is None else str(value)
