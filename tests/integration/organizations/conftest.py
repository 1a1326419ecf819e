"""Organizations fixtures: one organization (Acme) with an owner, a billing admin and a member,
and an outsider who owns another organization; each with their own logged-in client."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.billing.portal_links import sign
from app.customers.models import Customer, Membership
from app.customers.service import CustomerService
from app.lib.clock import utcnow
from tests.conftest import sibling_client
from tests.integration.billing.conftest import api  # noqa: F401 - a fixture

_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


@dataclass
class Person:
    client: AsyncTestClient[Litestar]
    email: str
    user_id: int
    personal_id: int  # their personal organization's customer id

    async def csrf(self) -> str:
        response = await self.client.get("/billing/team")
        match = _CSRF.search(response.text)
        assert match, f"no CSRF field on /billing/team ({response.status_code})"
        return match.group(1)

    async def post(self, path: str, data: dict[str, str] | None = None, **kwargs):  # type: ignore[no-untyped-def]
        token = await self.csrf()
        return await self.client.post(
            path, data={**(data or {}), "_csrf_token": token}, follow_redirects=False, **kwargs
        )


@dataclass
class Org:
    id: int
    external_id: str
    public_id: str
    name: str


async def make_user(session: AsyncSession, primary: AsyncTestClient[Litestar], name: str) -> User:
    email = f"{name}-{secrets.token_hex(3)}@example.com"
    user = User(email=email, name=name.capitalize(), password_hash=None)
    session.add(user)
    await session.flush()
    catalog = primary.app.state["catalog"]
    await CustomerService(session, catalog).create_for_user(user.id, email, name.capitalize())
    await session.commit()
    return user


async def log_in(
    primary: AsyncTestClient[Litestar], user: User, customer: Customer | Org
) -> AsyncTestClient[Litestar]:
    """A new client logged in as `user`, showing `customer`'s organization (a portal link
    that names them)."""
    client = sibling_client(primary)
    secret = primary.app.state["settings"].secret_key
    token = sign(secret, customer.public_id, utcnow(), member_id=user.id)
    response = await client.post(f"/portal/{token}", follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


async def join(session: AsyncSession, org: Org, user: User, role: str) -> None:
    session.add(Membership(customer_id=org.id, user_id=user.id, role=role))
    await session.commit()


@dataclass
class Team:
    org: Org
    owner: Person
    billing_admin: Person
    member: Person
    outsider: Person  # owns another organization, belongs to none of Acme's

    def by_role(self, role: str) -> Person:
        return {
            "owner": self.owner,
            "billing_admin": self.billing_admin,
            "member": self.member,
            "outsider": self.outsider,
        }[role]


@pytest.fixture
async def team(client: AsyncTestClient[Litestar], session: AsyncSession) -> AsyncIterator[Team]:
    users = {
        name: await make_user(session, client, name) for name in ("olive", "bill", "mia", "otto")
    }
    owner = users["olive"]
    personal = await session.get(Customer, (await _personal(session, owner.id)))
    assert personal is not None
    await session.execute(update(Customer).where(Customer.id == personal.id).values(name="Acme"))
    await session.commit()
    org = Org(personal.id, personal.external_id, personal.public_id, "Acme")
    await join(session, org, users["bill"], "billing_admin")
    await join(session, org, users["mia"], "member")
    people = {}
    for name, user in users.items():
        shown: Customer | Org = org
        if name == "otto":
            other = await session.get(Customer, await _personal(session, user.id))
            assert other is not None
            shown = other
        people[name] = Person(
            await log_in(client, user, shown),
            user.email,
            user.id,
            await _personal(session, user.id),
        )
    yield Team(org, people["olive"], people["bill"], people["mia"], people["otto"])


async def _personal(session: AsyncSession, user_id: int) -> int:
    from sqlalchemy import select

    found = await session.scalar(select(Customer.id).where(Customer.user_id == user_id))
    assert found is not None
    return int(found)
