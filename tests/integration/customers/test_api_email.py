"""`POST /api/v1/customers` checks the email with signup's rule; null and "" stay allowed."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient


async def upsert(api: AsyncTestClient[Litestar], **customer):
    return await api.post("/api/v1/customers", json={"customer": {"external_id": "c1", **customer}})


@pytest.mark.parametrize(
    "email",
    ["not-an-email", "a@b", "two@at@example.com", "sp ace@example.com", f"{'a' * 250}@x.io"],
)
async def test_an_invalid_email_is_422_and_creates_nothing(api, email):
    response = await upsert(api, email=email)

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error" and body["field"] == "email"
    assert body["message"]
    assert (await api.get("/api/v1/customers/c1")).status_code == 404


async def test_an_invalid_email_does_not_change_a_customer(api):
    assert (await upsert(api, email="ada@example.com", name="Ada")).status_code == 200
    response = await upsert(api, email="not-an-email", name="Grace")
    assert response.status_code == 422
    customer = (await api.get("/api/v1/customers/c1")).json()["customer"]
    assert (customer["email"], customer["name"]) == ("ada@example.com", "Ada")


async def test_a_valid_email_is_kept_as_signup_keeps_it(api):
    response = await upsert(api, email="  Ada@Example.COM ")
    assert response.status_code == 200, response.text
    assert response.json()["customer"]["email"] == "ada@example.com"


async def test_null_leaves_the_email_and_blank_clears_it(api):
    assert (await upsert(api, email=None)).json()["customer"]["email"] is None
    assert (await upsert(api, email="ada@example.com")).status_code == 200
    # Lago's clients send every unset field as null.
    assert (await upsert(api, email=None, name="Ada")).json()["customer"]["email"] == (
        "ada@example.com"
    )
    assert (await upsert(api)).json()["customer"]["email"] == "ada@example.com"
    cleared = await upsert(api, email="")
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["customer"]["email"] is None
    assert (await upsert(api, external_id="c2", email=" ")).json()["customer"]["email"] is None
