"""The portal in-process against a real emulator process, with webhooks forwarded by the test.

The emulator delivers its (signed) webhooks to a small receiver; a test forwards the ones
it wants to the app's `POST /webhooks/stripe` — in order, shuffled, twice — so delivery is
under the test's control. The app's Stripe gateway talks to the emulator through the SDK.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.customers.models import Customer, Subscription
from app.db.engine import write_from_here
from app.stripe.gateway import StripeGateway
from tests.conftest import csrf_token
from tests.factories import log_in_new_user
from tests.integration.stripe_emulator.conftest import (
    WEBHOOK_SECRET as EMULATOR_SECRET,
)
from tests.integration.stripe_emulator.conftest import (
    Receiver,
    _start_receiver,
    make_emulator,
    wait_until,
)
from tests.support import make_settings

VISA = {"card_number": "4242 4242 4242 4242", "exp_date": "12 / 34", "cvc": "123"}
DECLINED = {**VISA, "card_number": "4000 0000 0000 0002"}
FAILS_LATER = {**VISA, "card_number": "4000 0000 0000 0341"}


class Emulator:
    def __init__(self, url: str, receiver: Receiver) -> None:
        self.url = url
        self.receiver = receiver

    def advance(self, days: float) -> None:
        response = httpx.post(f"{self.url}/_emulator/advance", data={"seconds": int(days * 86400)})
        response.raise_for_status()

    def pay(self, checkout_url: str, card: dict[str, str] = VISA) -> httpx.Response:
        return httpx.post(checkout_url, data=card, timeout=10)

    def deliveries_for(
        self, related: Callable[[dict[str, Any]], bool], *, after: int = 0
    ) -> list[tuple[bytes, str]]:
        with self.receiver.lock:
            items = list(self.receiver.deliveries[after:])
        seen: set[str] = set()
        result = []
        for delivery in items:
            event = delivery.event
            if delivery.status == 200 and event["id"] not in seen and related(event):
                seen.add(event["id"])
                result.append((delivery.body, delivery.signature))
        return result

    def mark(self) -> int:
        with self.receiver.lock:
            return len(self.receiver.deliveries)


@contextlib.contextmanager
def running_emulator(tmp: Path) -> Iterator[Emulator]:
    """An emulator process and its webhook receiver, stopped on exit (a module that moves the
    emulator's clock runs one of its own)."""
    receiver, server = _start_receiver()
    process = make_emulator(tmp, receiver.url)
    process.start()
    try:
        yield Emulator(process.url, receiver)
    finally:
        process.stop()
        server.shutdown()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with running_emulator(tmp_path_factory.mktemp("stripe-portal-emulator")) as emulator:
        yield emulator


@pytest.fixture
def settings(var_dir: Path, database_url: str, emulator: Emulator) -> Settings:
    return make_settings(
        var_dir,
        database_url,
        stripe_api_base=emulator.url,
        stripe_webhook_secret=EMULATOR_SECRET,
    )


@pytest.fixture
def gateway(settings: Settings) -> StripeGateway:
    return StripeGateway.from_settings(settings)


def related_to(stripe_customer_id: str) -> Callable[[dict[str, Any]], bool]:
    def check(event: dict[str, Any]) -> bool:
        obj = event["data"]["object"]
        previous = event["data"].get("previous_attributes") or {}
        return stripe_customer_id in (obj.get("customer"), obj.get("id"), previous.get("customer"))

    return check


async def forward(
    client: AsyncTestClient[Litestar], deliveries: list[tuple[bytes, str]]
) -> list[dict[str, Any]]:
    results = []
    for body, signature in deliveries:
        response = await client.post(
            "/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        results.append(response.json())
    return results


async def wait_for_events(
    emulator: Emulator,
    stripe_customer_id: str,
    types: set[str],
    *,
    after: int = 0,
    timeout: float = 10,
) -> list[tuple[bytes, str]]:
    """Deliveries about this customer since `after`, once every type in `types` has arrived."""
    import json

    def ready() -> list[tuple[bytes, str]] | None:
        found = emulator.deliveries_for(related_to(stripe_customer_id), after=after)
        kinds = {json.loads(body)["type"] for body, _ in found}
        return found if types <= kinds else None

    # wait_until polls in a thread-free loop; it is sync, which is fine for a few seconds.
    return wait_until(ready, timeout, f"webhooks {sorted(types)}")


async def login_new_user(client: AsyncTestClient[Litestar], email: str) -> None:
    """A new user, as signup makes them, logged in on `client` (signup is tested in accounts)."""
    await log_in_new_user(client, email)


async def post_form(
    client: AsyncTestClient[Litestar],
    path: str,
    data: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    token = await csrf_token(client, "/billing/checkout/canceled")
    return await client.post(
        path,
        data={**(data or {}), "_csrf_token": token},
        headers=headers or {},
        follow_redirects=False,
    )


async def subscribe(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    email: str,
    plan: str = "pro",
    *,
    trial: bool,
    events: frozenset[str] = frozenset({"checkout.session.completed"}),
    deliver: Callable[[AsyncTestClient[Litestar], list[tuple[bytes, str]]], Awaitable[Any]] = (
        forward
    ),
    pay: Callable[[str], None] | None = None,
) -> str:
    """A new user subscribed to `plan` through Checkout (on its trial, or paying at once as a
    returning customer), its webhooks (`events`, once all came) delivered; returns the Stripe
    customer id. `pay` completes the Checkout page at that URL (by default with a Visa)."""
    await login_new_user(client, email)
    if not trial:
        _, row = await customer_of(session, email)
        await write_from_here(session)
        row.metadata_ = {"last_stripe_subscription_id": "sub_old"}  # no trial: paid now
        await session.commit()
    mark = emulator.mark()
    response = await post_form(client, "/billing/checkout", {"plan": plan, "interval": "month"})
    if pay is None:
        assert emulator.pay(response.headers["location"]).status_code == 303
    else:
        pay(response.headers["location"])
    customer, _ = await customer_of(session, email)
    cus = customer.stripe_customer_id
    assert cus
    await deliver(client, await wait_for_events(emulator, cus, set(events), after=mark))
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.status) == (plan, "trialing" if trial else "active")
    return cus


_CONFIRM_FORM = re.compile(
    r'<form method="post" action="/billing/subscription/change".*?</form>', re.DOTALL
)
_HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


async def review_plan_change(
    client: AsyncTestClient[Litestar], plan: str, interval: str = "month"
) -> tuple[httpx.Response, dict[str, str]]:
    """The review page of a plan change and its confirm form's fields."""
    page = await client.get(
        "/billing/subscription/review", params={"plan": plan, "interval": interval}
    )
    assert page.status_code == 200, page.text
    form = _CONFIRM_FORM.search(page.text)
    assert form, page.text
    return page, dict(_HIDDEN.findall(form.group(0)))


async def change_plan(
    client: AsyncTestClient[Litestar], plan: str, interval: str = "month"
) -> httpx.Response:
    """Change the plan as a customer does: the review page, then its confirm button."""
    _, fields = await review_plan_change(client, plan, interval)
    return await post_form(client, "/billing/subscription/change", fields)


async def customer_of(session: AsyncSession, email: str) -> tuple[Customer, Subscription]:
    await session.rollback()  # a fresh snapshot: the app committed in other sessions
    session.expire_all()
    customer = await session.scalar(select(Customer).where(Customer.email == email))
    assert customer is not None
    subscription = await session.scalar(
        select(Subscription).where(Subscription.customer_id == customer.id)
    )
    assert subscription is not None
    return customer, subscription


def flashes(html: str) -> list[str]:
    return re.findall(r'class="flash flash-\w+">([^<]*)<', html)


class Services:
    """The Stripe services on the test's own event loop (the app's writer lives on another)."""

    def __init__(self, session: AsyncSession, writer: Any, catalog: Any, gateway: StripeGateway):
        from app.billing.service import BillingService
        from app.metering.service import MeteringService
        from app.notifications.service import NotificationService
        from app.stripe_sync.repository import StripeEventRepository
        from app.stripe_sync.service import StripeEventService

        self.metering = MeteringService(session, catalog, writer, writer.upgrade_url)
        self.billing = BillingService(
            session,
            catalog,
            gateway,
            "http://testserver.local",
            self.metering,
            checkout_ledger=StripeEventRepository(session),
        )
        notifications = NotificationService(session, "http://testserver.local", catalog)
        self.events = StripeEventService(session, gateway, self.billing.mirror, notifications)


@pytest.fixture
async def services(session: AsyncSession, engine: Any, catalog: Any, gateway: StripeGateway) -> Any:
    from app.metering.writer import UsageWriter

    writer = UsageWriter(engine, catalog, upgrade_url="http://testserver.local/billing/upgrade")
    try:
        yield Services(session, writer, catalog, gateway)
    finally:
        await writer.close()
