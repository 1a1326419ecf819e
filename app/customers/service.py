"""Customers: the billing identity, created at signup or by the SaaS backend (upsert)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Catalog
from app.customers.models import OWNER, Customer, Membership, Subscription
from app.customers.repository import CustomerRepository
from app.customers.statuses import CONVERTED
from app.db.engine import write_from_here
from app.lib.emails import normalize_email
from app.lib.errors import Conflict, NotFound, ValidationFailed


@dataclass(frozen=True)
class CustomerInput:
    external_id: str
    email: str | None = None
    name: str | None = None
    plan: str | None = None


def check_new_external_id(external_id: str) -> None:
    """A new customer's id must fit in one URL path segment: the API and the admin pages
    address a customer as `.../customers/{external_id}`, and no server routes a `/` (even
    percent-encoded) into one segment, nor keeps `.` or `..` as a segment. Existing customers
    keep their ids."""
    if "/" in external_id or external_id in (".", ".."):
        raise ValidationFailed(
            "external_id must fit in one URL path segment: it cannot contain '/' "
            "or be '.' or '..'.",
            field="external_id",
        )


def _checked(data: CustomerInput) -> CustomerInput:
    """The email checked by signup's rule and kept as signup keeps it (trimmed, lower case).
    Lago's clients send unset fields as null: `None` leaves the email as it is, and a blank
    one (`""`) clears it."""
    if data.email is None:
        return data
    return replace(data, email=normalize_email(data.email) if data.email.strip() else "")


class CustomerService:
    """Reads and writes customers. Methods flush; the caller's service or boundary commits."""

    def __init__(self, session: AsyncSession, catalog: Catalog) -> None:
        self.session = session
        self.catalog = catalog
        self.repo = CustomerRepository(session)

    async def get(self, external_id: str) -> Customer:
        customer = await self.repo.by_external_id(external_id)
        if customer is None:
            raise NotFound(
                f"No customer with external_id {external_id!r}.", code="customer_not_found"
            )
        return customer

    async def for_user(self, user_id: int) -> Customer | None:
        """The billing account the user created (their personal organization): the one their
        own email and account follow. Pages use `current_for` (memberships)."""
        return await self.repo.by_user_id(user_id)

    async def current_for(self, user_id: int, org_id: int | None = None) -> Customer | None:
        """The user's current organization: `org_id` when they belong to it, else their first
        (personal) one; None when they belong to none."""
        found = await self.repo.current_for_member(user_id, org_id)
        return found[0] if found is not None else None

    async def is_member(self, customer_id: int, user_id: int) -> bool:
        return await self.repo.role_of(customer_id, user_id) is not None

    async def default_member(self, customer: Customer) -> int | None:
        """Who a portal link that names nobody logs in: the customer's creator while a
        member, else its first owner, else None."""
        if customer.user_id is not None and await self.is_member(customer.id, customer.user_id):
            return customer.user_id
        return await self.repo.first_owner(customer.id)

    async def add_owner(self, customer: Customer, user_id: int) -> None:
        self.repo.add(Membership(customer_id=customer.id, user_id=user_id, role=OWNER))
        await self.session.flush()

    async def by_stripe_id(self, stripe_customer_id: str | None) -> Customer | None:
        return await self.repo.by_stripe_id(stripe_customer_id) if stripe_customer_id else None

    async def by_public_id(self, public_id: str | None) -> Customer | None:
        return await self.repo.by_public_id(public_id) if public_id else None

    async def with_stripe_customer(self) -> list[Customer]:
        return await self.repo.with_stripe_customer()

    async def locked_subscription(self, customer: Customer) -> Subscription:
        """The customer's subscription row, locked while the caller rewrites it (PostgreSQL:
        the row; SQLite: the write lock, taken before the read so it sees the latest commit)."""
        await write_from_here(self.session)
        row = await self.repo.subscription_for_update(customer.id)
        return row if row is not None else await self.subscription(customer)

    async def subscription(self, customer: Customer) -> Subscription:
        subscription = await self.repo.subscription_of(customer.id)
        if subscription is None:  # every customer has one; repair rather than fail
            subscription = self._default_subscription(customer)
            self.repo.add(subscription)
            await self.session.flush()
        return subscription

    async def create_for_user(self, user_id: int, email: str, name: str | None) -> Customer:
        customer = Customer(
            public_id=str(uuid.uuid4()),
            external_id=f"user_{user_id}",
            user_id=user_id,
            email=email,
            name=name or None,
        )
        self.repo.add(customer)
        await self.session.flush()
        self.repo.add(self._default_subscription(customer))
        # The user's personal organization: they own it.
        self.repo.add(Membership(customer_id=customer.id, user_id=user_id, role=OWNER))
        await self.session.flush()
        return customer

    async def upsert(self, data: CustomerInput) -> tuple[Customer, Subscription]:
        """Create or update by external_id and commit; a concurrent create of the same id wins once.

        A write transaction from the start: on SQLite a read that later writes fails at once
        ("database is locked") if any other write commits in between."""
        data = _checked(data)
        try:
            await write_from_here(self.session)
            result = await self._upsert(data)
            await self.session.commit()
        except IntegrityError:
            await self.session.rollback()
            await write_from_here(self.session)
            result = await self._upsert(data)
            await self.session.commit()
        return result

    async def get_or_create(self, external_id: str) -> tuple[Customer, Subscription, bool]:
        """The customer with this external id (and whether it was made now: on the default
        plan), in the caller's transaction; flushes, the caller commits."""
        customer = await self.repo.by_external_id(external_id)
        if customer is not None:
            return customer, await self.subscription(customer), False
        customer, subscription = await self._upsert(CustomerInput(external_id=external_id))
        return customer, subscription, True

    async def _upsert(self, data: CustomerInput) -> tuple[Customer, Subscription]:
        if data.plan is not None and self.catalog.plan(data.plan) is None:
            raise ValidationFailed(
                f"Unknown plan {data.plan!r}.", code="unknown_plan", field="plan"
            )
        customer = await self.repo.by_external_id(data.external_id)
        if customer is None:
            check_new_external_id(data.external_id)
            customer = Customer(
                public_id=str(uuid.uuid4()),
                external_id=data.external_id,
                email=data.email or None,
                name=data.name,
            )
            self.repo.add(customer)
            await self.session.flush()
            subscription = self._default_subscription(customer, data.plan)
            self.repo.add(subscription)
            await self.session.flush()
            return customer, subscription
        if customer.deleted_at is not None:
            # Its person deleted the account: writing a name or email back would undo that.
            raise Conflict(
                f"The customer {customer.external_id!r} was deleted by its user on "
                f"{customer.deleted_at:%b %-d, %Y}; its record is kept for the invoices. "
                "A new customer needs a new external_id.",
                code="customer_deleted",
                field="external_id",
            )
        if data.email is not None:
            customer.email = data.email or None
        if data.name is not None:
            customer.name = data.name
        subscription = await self.subscription(customer)
        if subscription.status == CONVERTED and data.plan not in (None, subscription.plan_slug):
            # Its usage moved to the customer it was converted into (app/metering/guests.py).
            raise Conflict(
                f"The guest {customer.external_id!r} was converted: its plan no longer changes.",
                code="guest_converted",
                field="plan",
            )
        if data.plan is not None and subscription.stripe_subscription_id is None:
            # A plan set by the backend applies only while Stripe does not own the subscription.
            subscription.plan_slug = data.plan
        await self.session.flush()
        return customer, subscription

    def _default_subscription(self, customer: Customer, plan: str | None = None) -> Subscription:
        return Subscription(
            customer_id=customer.id,
            external_id=customer.external_id,
            plan_slug=plan or self.catalog.default_plan.slug,
            status="active",
        )
