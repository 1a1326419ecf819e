"""`GET /api/v1/plans` (issue 20, item 5): the public plans for a SaaS's own pricing page,
with no API key, cacheable (Cache-Control: public, an ETag, 304 on If-None-Match)."""

from __future__ import annotations

import pytest

from app.catalog.controllers import PLANS_MAX_AGE


async def test_the_plans_are_public_json_with_prices_quotas_features_and_trials(client):
    response = await client.get("/api/v1/plans")  # no Authorization header

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert [p["code"] for p in body["plans"]] == ["free", "pro", "business"]  # guest is hidden
    assert [f["code"] for f in body["features"]] == ["export", "priority_support", "sso"]
    assert body["features"][0] == {
        "code": "export",
        "name": "Data export",
        "description": "Download usage and invoices as CSV.",
    }
    assert [m["code"] for m in body["meters"]] == ["ai_requests", "tokens", "api_calls"]
    pro = body["plans"][1]
    assert pro["name"] == "Pro" and pro["trial_days"] == 14 and pro["default"] is False
    assert pro["prices"] == [
        {"interval": "month", "amount": 2900, "currency": "usd"},
        {"interval": "year", "amount": 29000, "currency": "usd"},
    ]
    assert pro["quotas"][0] == {
        "meter": "ai_requests",
        "included": 1000,
        "unlimited": False,
        "reset": "billing_period",
        "overage_unit_amount": None,
    }
    assert pro["features"] == {"export": True, "priority_support": False, "sso": False}
    assert pro["highlights"] == ["1,000 AI requests a month", "Email support"]
    business = body["plans"][2]
    assert business["quotas"][0]["included"] is None and business["quotas"][0]["unlimited"]
    assert business["quotas"][2]["overage_unit_amount"] == 1
    free = body["plans"][0]
    assert free["default"] and free["trial_days"] == 0
    assert free["quotas"][0]["reset"] == "day"
    assert not any(free["features"].values())


async def test_the_plans_are_cacheable_with_an_etag_and_304(client):
    first = await client.get("/api/v1/plans")
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert first.headers["cache-control"] == f"public, max-age={PLANS_MAX_AGE}"
    assert first.headers["access-control-allow-origin"] == "*"
    assert "set-cookie" not in first.headers

    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = await client.get("/api/v1/plans", headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == first.headers["cache-control"]

    stale = await client.get("/api/v1/plans", headers={"If-None-Match": '"stale"'})
    assert stale.status_code == 200 and stale.json() == first.json()
    # The same catalog gives the same tag (every process agrees).
    assert (await client.get("/api/v1/plans")).headers["etag"] == etag


@pytest.mark.parametrize("key", ["Bearer wrong", ""])
async def test_any_or_no_api_key_gets_the_plans(client, key):
    response = await client.get("/api/v1/plans", headers={"Authorization": key})
    assert response.status_code == 200


async def test_the_schema_says_no_key_or_login_is_needed(client):
    document = (await client.get("/schema/openapi.json")).json()
    operation = document["paths"]["/api/v1/plans"]["get"]
    assert operation["security"] == []  # the document's default is the session cookie
    assert "401" not in operation["responses"]
    assert "content" not in operation["responses"]["304"]
    header = next(p for p in operation["parameters"] if p["in"] == "header")
    assert header["name"] == "If-None-Match"
