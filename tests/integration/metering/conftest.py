from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.apikeys.service import ApiKeyService


@pytest.fixture
async def api_key(session: AsyncSession) -> str:
    _key, raw = await ApiKeyService(session).create("tests")
    return raw


@pytest.fixture
async def api(app: Litestar, api_key: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        client.headers["Authorization"] = f"Bearer {api_key}"
        yield client


async def create_customer(
    api: AsyncTestClient[Litestar], external_id: str = "cus_1", plan: str | None = None
) -> dict:
    body = {
        "customer": {
            "external_id": external_id,
            "email": f"{external_id}@example.com",
            "name": "Ada",
        }
    }
    if plan:
        body["customer"]["plan"] = plan
    response = await api.post("/api/v1/customers", json=body)
    assert response.status_code == 200, response.text
    return response.json()["customer"]


def event(tx: str, code: str = "ai_requests", customer: str = "cus_1", **properties) -> dict:
    return {
        "event": {
            "transaction_id": tx,
            "external_customer_id": customer,
            "code": code,
            "properties": properties,
        }
    }


async def balance(api: AsyncTestClient[Litestar], code: str, customer: str = "cus_1") -> dict:
    response = await api.get(f"/api/v1/customers/{customer}/balances")
    assert response.status_code == 200, response.text
    return next(b for b in response.json()["balances"] if b["code"] == code)
