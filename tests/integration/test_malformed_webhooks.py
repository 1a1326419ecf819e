"""A signed webhook body that is not an event the ledger can store is a 400 and stores
nothing (it was a 500): not an object, wrong types, an id too long for its column or holding
a NUL (PostgreSQL refuses both)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.stripe_sync.models import StripeEvent
from tests.support import WEBHOOK_SECRET


def event(**fields: Any) -> dict[str, Any]:
    return {
        "id": "evt_shape_1",
        "object": "event",
        "api_version": "2025-01-27.acacia",
        "created": int(time.time()),
        "type": "product.created",
        "livemode": False,
        "data": {"object": {"id": "prod_x", "object": "product"}},
        **fields,
    }


async def post_signed(client: AsyncTestClient[Litestar], body: bytes) -> Any:
    signature = stripe.WebhookSignature.generate_signature_header(
        body.decode(), WEBHOOK_SECRET, timestamp=int(time.time())
    )
    return await client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
    )


async def stored(session: AsyncSession) -> int:
    await session.rollback()
    return int(await session.scalar(select(func.count()).select_from(StripeEvent)) or 0)


MALFORMED = {
    "array": [event()],
    "string": "evt",
    "created_text": event(created="yesterday"),
    "created_float": event(created=1.5),
    "created_too_big": event(created=2**64),
    "object_list": event(data={"object": [1, 2]}),
    "data_missing": {k: v for k, v in event().items() if k != "data"},
    "id_number": event(id=7),
    "id_empty": event(id=""),
    "id_too_long": event(id="evt_" + "x" * 252),
    "id_nul": event(id="evt_\x00"),
    "type_nul": event(type="product.\x00created"),
    "nul_in_object": event(data={"object": {"id": "prod_x", "name": "a\x00b"}}),
    "nul_in_key": event(data={"object": {"id": "prod_x", "metadata": {"k\x00": "v"}}}),
    "api_version_too_long": event(api_version="v" * 65),
    "type_too_long": event(type="t" * 101),
}


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_signed_malformed_body_is_400_and_stores_nothing(client, session, name):
    response = await post_signed(client, json.dumps(MALFORMED[name]).encode())
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_event"
    assert response.json()["message"]
    assert await stored(session) == 0


async def test_not_json_at_all_is_400(client, session):
    response = await post_signed(client, b"{not json")
    assert response.status_code == 400, response.text
    assert await stored(session) == 0


async def test_a_long_customer_reference_is_stored_cut_to_its_column(client, session):
    obj = {"id": "cs_1", "object": "checkout.session", "customer": "cus_" + "x" * 300}
    body = json.dumps(event(type="checkout.session.expired", data={"object": obj})).encode()
    response = await post_signed(client, body)
    assert response.status_code == 200, response.text
    assert await stored(session) == 1


async def test_a_well_formed_event_is_still_stored(client, session):
    response = await post_signed(client, json.dumps(event()).encode())
    assert response.status_code == 200, response.text
    assert await stored(session) == 1
