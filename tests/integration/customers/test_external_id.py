"""`POST /api/v1/customers`: a new customer's external_id must fit in one URL path segment."""

from __future__ import annotations

import uuid

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer, Subscription


async def upsert(api: AsyncTestClient[Litestar], external_id: str, **fields: str):
    return await api.post(
        "/api/v1/customers", json={"customer": {"external_id": external_id, **fields}}
    )


@pytest.mark.parametrize("external_id", ["a/b", "/lead", "trail/", "..", "."])
async def test_an_id_that_is_not_one_path_segment_is_refused(
    api: AsyncTestClient[Litestar], session: AsyncSession, external_id: str
) -> None:
    response = await upsert(api, external_id)

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error" and body["field"] == "external_id"
    assert "one URL path segment" in body["message"]
    assert await session.scalar(select(func.count()).select_from(Customer)) == 0


@pytest.mark.parametrize("external_id", ["x?y", "h#1", "pct%41", "sp ace", "Émile", "a.b", "..."])
async def test_other_ids_are_accepted_and_read_back(
    api: AsyncTestClient[Litestar], external_id: str
) -> None:
    response = await upsert(api, external_id)
    assert response.status_code == 200, response.text
    assert response.json()["customer"]["external_id"] == external_id


async def test_an_existing_customer_with_a_slash_can_still_be_updated(
    api: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    customer = Customer(public_id=str(uuid.uuid4()), external_id="legacy/7")
    session.add(customer)
    await session.flush()
    session.add(
        Subscription(
            customer_id=customer.id, external_id="legacy/7", plan_slug="free", status="active"
        )
    )
    await session.commit()

    response = await upsert(api, "legacy/7", name="Still here")

    assert response.status_code == 200, response.text
    assert response.json()["customer"]["name"] == "Still here"
