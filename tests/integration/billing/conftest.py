"""Billing page fixtures: logged-in customers, an API client, and rows the Stripe webhooks write."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.apikeys.service import ApiKeyService
from app.billing.models import Invoice, PaymentMethod
from app.billing.portal_links import sign
from app.customers.models import Subscription
from app.customers.service import CustomerService
from app.lib.clock import utcnow
from tests.conftest import sibling_client

BASE_URL = "http://testserver.local"
_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


@dataclass
class Member:
    """A signed-up user with their own logged-in client and their customer."""

    client: AsyncTestClient[Litestar]
    email: str
    customer_id: int
    external_id: str

    async def csrf(self) -> str:
        response = await self.client.get("/billing/payment-methods")
        match = _CSRF.search(response.text)
        assert match, "no CSRF field on the page"
        return match.group(1)


@pytest.fixture
async def api(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    _key, raw = await ApiKeyService(session).create("billing tests")
    api = sibling_client(client)
    api.headers["Authorization"] = f"Bearer {raw}"
    yield api


async def _member(
    primary: AsyncTestClient[Litestar], session: AsyncSession, name: str
) -> AsyncIterator[Member]:
    """A user and their customer as signup makes them, logged in through a portal link (no
    password hashing: it keeps these tests fast; signup itself is tested in accounts)."""
    email = f"{name}-{secrets.token_hex(3)}@example.com"
    user = User(email=email, name=name.capitalize(), password_hash=None)
    session.add(user)
    await session.flush()
    catalog = primary.app.state["catalog"]
    customer = await CustomerService(session, catalog).create_for_user(user.id, email, name)
    member = (customer.id, customer.external_id, customer.public_id)
    await session.commit()
    client = sibling_client(primary)
    secret = primary.app.state["settings"].secret_key
    response = await client.post(f"/portal/{sign(secret, member[2], utcnow())}")
    assert response.status_code == 200, response.text
    yield Member(client, email, member[0], member[1])


@pytest.fixture
async def member(client: AsyncTestClient[Litestar], session: AsyncSession) -> AsyncIterator[Member]:
    async for value in _member(client, session, "ada"):
        yield value


@pytest.fixture
async def other_member(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> AsyncIterator[Member]:
    async for value in _member(client, session, "eve"):
        yield value


async def record(
    api: AsyncTestClient[Litestar],
    customer: str,
    code: str = "ai_requests",
    count: int = 1,
    **props,
) -> None:
    """`count` events through the usage API (the path every real usage takes)."""
    events = [
        {
            "transaction_id": f"t_{secrets.token_hex(8)}",
            "external_customer_id": customer,
            "code": code,
            "properties": props,
        }
        for _ in range(count)
    ]
    for start in range(0, len(events), 100):
        response = await api.post(
            "/api/v1/events/batch", json={"events": events[start : start + 100]}
        )
        assert response.status_code == 200, response.text
        failed = [e for e in response.json()["events"] if "error" in e]
        assert not failed, failed


async def grant(api: AsyncTestClient[Litestar], customer: str, amount: int, **extra: Any) -> None:
    body = {"code": "ai_requests", "amount": amount, "transaction_id": f"g_{secrets.token_hex(6)}"}
    body.update(extra)
    response = await api.post(f"/api/v1/customers/{customer}/credits", json=body)
    assert response.status_code == 200, response.text


async def set_subscription(session: AsyncSession, customer_id: int, **values: Any) -> None:
    await session.execute(
        update(Subscription).where(Subscription.customer_id == customer_id).values(**values)
    )
    await session.commit()


async def add_invoice(session: AsyncSession, customer_id: int, n: int, **values: Any) -> Invoice:
    created = utcnow() - timedelta(days=40 - n)
    row = {
        "customer_id": customer_id,
        "stripe_invoice_id": f"in_{customer_id}_{n}_{secrets.token_hex(3)}",
        "number": f"INV-{customer_id}-{n:04d}",
        "status": "paid",
        "currency": "usd",
        "total": 2900,
        "subtotal": 2900,
        "amount_due": 2900,
        "amount_paid": 2900,
        "period_start": created,
        "period_end": created + timedelta(days=30),
        "hosted_invoice_url": f"https://invoice.example/{customer_id}/{n}",
        "invoice_pdf": f"https://invoice.example/{customer_id}/{n}.pdf",
        "created_at": created,
    }
    row.update(values)
    invoice = Invoice(**row)
    session.add(invoice)
    await session.commit()
    return invoice


async def add_card(
    session: AsyncSession, customer_id: int, last4: str, *, default: bool = False, **values: Any
) -> PaymentMethod:
    card = PaymentMethod(
        customer_id=customer_id,
        stripe_payment_method_id=f"pm_{customer_id}_{last4}_{secrets.token_hex(3)}",
        brand=values.pop("brand", "visa"),
        last4=last4,
        exp_month=values.pop("exp_month", 12),
        exp_year=values.pop("exp_year", utcnow().year + 3),
        is_default=default,
        **values,
    )
    session.add(card)
    await session.commit()
    return card


def in_days(days: float) -> datetime:
    return utcnow() + timedelta(days=days)


def block_of(html: str, testid: str) -> str:
    """The element with data-testid=`testid` up to the next meter block (good enough for asserts)."""
    start = html.index(f'data-testid="{testid}"')
    end = html.find('<div class="meter meter-', start)
    return html[start : end if end != -1 else len(html)]


HX = {"HX-Request": "true"}
