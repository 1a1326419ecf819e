"""A form sent twice (a double click, a resubmit) is one action at Stripe: its idempotency
key is made of the action, its inputs and the form's own id (`attempt`, one per rendered
form), so the second request gets the first one's Checkout Session; the next page's form is a
new action."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.stripe.gateway import StripeGateway
from tests.integration.stripe.conftest import customer_of, login_new_user, post_form


async def _attempt(client: AsyncTestClient[Litestar], path: str) -> str:
    page = await client.get(path)
    found = re.search(r'name="attempt" value="([0-9a-f]+)"', page.text)
    assert found, page.text
    return found.group(1)


def _session_id(location: str) -> str:
    found = re.search(r"/checkout/(cs_\w+)", location)
    assert found, location
    return found.group(1)


async def test_a_plan_checkout_form_sent_twice_opens_one_session(
    client: AsyncTestClient[Litestar], session: AsyncSession, gateway: StripeGateway
) -> None:
    email = "double-checkout@example.com"
    await login_new_user(client, email)
    form = {
        "plan": "pro",
        "interval": "month",
        "attempt": await _attempt(client, "/billing/upgrade"),
    }
    first = await post_form(client, "/billing/checkout", form)
    second = await post_form(client, "/billing/checkout", form)
    assert first.status_code == second.status_code == 303
    assert second.headers["location"] == first.headers["location"]
    customer, _ = await customer_of(session, email)
    cus = str(customer.stripe_customer_id)
    assert [s["id"] for s in await gateway.open_checkout_sessions(cus)] == [
        _session_id(first.headers["location"])
    ]

    # The next page's form is a new Checkout; the earlier one is expired (one can be paid).
    other = {**form, "attempt": await _attempt(client, "/billing/upgrade")}
    third = await post_form(client, "/billing/checkout", other)
    assert third.headers["location"] != first.headers["location"]
    open_now = [s["id"] for s in await gateway.open_checkout_sessions(cus)]
    assert open_now == [_session_id(third.headers["location"])]
    # The first page's form again (the back button): its session is over, so a new one opens.
    late = await post_form(client, "/billing/checkout", form)
    late_session = await gateway.retrieve_checkout_session(_session_id(late.headers["location"]))
    assert late_session["status"] == "open"
    assert late_session["id"] not in (_session_id(first.headers["location"]), open_now[0])


async def test_a_credit_pack_form_sent_twice_opens_one_session(
    client: AsyncTestClient[Litestar], session: AsyncSession, gateway: StripeGateway
) -> None:
    email = "double-pack@example.com"
    await login_new_user(client, email)
    form = {"pack": "ai_100", "attempt": await _attempt(client, "/billing/credits")}
    first = await post_form(client, "/billing/credits/checkout", form)
    second = await post_form(client, "/billing/credits/checkout", form)
    assert second.headers["location"] == first.headers["location"]
    customer, _ = await customer_of(session, email)
    cus = str(customer.stripe_customer_id)
    assert len(await gateway.open_checkout_sessions(cus)) == 1

    # Buying a second pack from a new page is a second Checkout.
    other = {**form, "attempt": await _attempt(client, "/billing/credits")}
    third = await post_form(client, "/billing/credits/checkout", other)
    assert third.headers["location"] != first.headers["location"]
    assert len(await gateway.open_checkout_sessions(cus)) == 2
