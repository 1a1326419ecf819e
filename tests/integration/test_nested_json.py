"""A deeply nested JSON body (1,000 levels) was a 500 on every JSON endpoint: the decoder ran
out of Python's recursion limit. It is a 422 naming the body under /api/ (413 on the webhook,
whose bodies Stripe signs), and so is one that decodes but nests deeper than the limit."""

from __future__ import annotations

import time

import pytest
import stripe
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.apikeys.service import ApiKeyService
from app.lib.json_limits import MAX_DEPTH
from tests.support import WEBHOOK_SECRET

POSTS = [
    "/api/v1/customers",
    "/api/v1/events",
    "/api/v1/events/batch",
    "/api/v1/reservations",
    "/api/v1/reservations/r1/commit",
    "/api/v1/customers/c1/check",
    "/api/v1/customers/c1/credits",
]


def nested(levels: int) -> bytes:
    return b'{"event": {"properties": {"p": ' + b"[" * levels + b"]" * levels + b"}}}"


@pytest.fixture
async def api(client: AsyncTestClient[Litestar], session: AsyncSession):
    _key, raw = await ApiKeyService(session).create("tests")
    client.headers["Authorization"] = f"Bearer {raw}"
    return client


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("levels", [1000, 100_000])
async def test_deep_bodies_are_422_in_the_api_shape(api, path, levels):
    response = await api.post(
        path, content=nested(levels), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["error"] == "validation_error"
    assert problem["field"] == "body"
    assert "nested" in problem["message"]


async def test_properties_deeper_than_the_limit_are_refused(api):
    """Below the decoder's limit, but deep enough to fail later (hashing, storing, encoding the
    answer): properties are the one free-form part of any body."""
    await api.post("/api/v1/customers", json={"customer": {"external_id": "c1"}})
    deep: list = []
    for _ in range(MAX_DEPTH):
        deep = [deep]
    body = {"transaction_id": "t1", "external_customer_id": "c1", "code": "ai_requests"}
    response = await api.post("/api/v1/events", json={"event": {**body, "properties": {"p": deep}}})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "properties"
    response = await api.post(
        "/api/v1/events/batch", json={"events": [{**body, "properties": {"p": deep}}]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["events"][0]["status"] == "rejected"
    assert response.json()["events"][0]["field"] == "properties"


async def test_nesting_within_the_limit_is_kept(api):
    await api.post("/api/v1/customers", json={"customer": {"external_id": "c1"}})
    properties = {"p": [[[["deep"]]]]}
    body = {
        "event": {
            "transaction_id": "t1",
            "external_customer_id": "c1",
            "code": "ai_requests",
            "properties": properties,
        }
    }
    response = await api.post("/api/v1/events", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["event"]["properties"] == properties


@pytest.mark.parametrize("levels", [1000, MAX_DEPTH + 1])
async def test_a_deep_signed_webhook_is_413(client, levels):
    body = (
        b'{"id": "evt_deep", "created": 1, "type": "x", "data": {"object": {"p": '
        + (b"[" * levels + b"]" * levels)
        + b"}}}"
    )
    signature = stripe.WebhookSignature.generate_signature_header(
        body.decode(), WEBHOOK_SECRET, timestamp=int(time.time())
    )
    response = await client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"
