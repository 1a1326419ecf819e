"""Two "remove card" requests at once on a paid plan with two cards: one succeeds."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.billing.service import BillingService
from app.catalog.models import Catalog
from app.db.engine import create_session_factory
from app.stripe.gateway import StripeGateway
from tests.integration.stripe.conftest import (
    VISA,
    Emulator,
    customer_of,
    forward,
    login_new_user,
    post_form,
    wait_for_events,
)

MASTERCARD = {**VISA, "card_number": "5555 5555 5555 4444"}


async def test_concurrent_removals_leave_a_paid_plan_one_card(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    engine: AsyncEngine,
    catalog: Catalog,
    gateway: StripeGateway,
) -> None:
    email = "two-removals@example.com"
    await login_new_user(client, email)
    mark = emulator.mark()
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    assert emulator.pay(response.headers["location"]).status_code == 303
    customer, _ = await customer_of(session, email)
    cus = customer.stripe_customer_id
    assert cus
    await forward(client, await wait_for_events(emulator, cus, {"checkout.session.completed"}))
    mark = emulator.mark()
    added = await post_form(client, "/billing/payment-methods/add")
    assert emulator.pay(added.headers["location"], MASTERCARD).status_code == 303
    await forward(
        client, await wait_for_events(emulator, cus, {"checkout.session.completed"}, after=mark)
    )
    cards = await gateway.list_payment_methods(cus)
    assert len(cards) == 2

    sessions = create_session_factory(engine)

    async def remove(pm_id: str) -> Any:
        async with sessions() as own:
            billing = BillingService(own, catalog, gateway, "http://testserver.local")
            mine = await billing.customer_by_stripe_id(cus)
            assert mine is not None
            return await billing.remove_card(mine, pm_id)

    results = await asyncio.gather(*(remove(card["id"]) for card in cards))
    assert sorted(r.category for r in results) == ["error", "success"], results
    assert len(await gateway.list_payment_methods(cus)) == 1
