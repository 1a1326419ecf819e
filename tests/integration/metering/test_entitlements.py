"""Feature entitlements and the quota in the 402 (issue 20, items 2 and 4): what a customer's
plan includes, checked with and without enforcement, and the numbers a refusal carries."""

from __future__ import annotations

import pytest

from tests.integration.metering.conftest import balance, create_customer, event

UPGRADE_TAIL = "/billing/upgrade"


async def _entitlements(api, customer: str) -> dict:
    response = await api.get(f"/api/v1/customers/{customer}/entitlements")
    assert response.status_code == 200, response.text
    return response.json()


async def test_entitlements_list_the_plan_features_and_the_balances_after_usage(api):
    await create_customer(api, "pro_1", plan="pro")
    for i in range(3):
        assert (await api.post("/api/v1/events", json=event(f"a{i}", customer="pro_1"))).is_success
    sent = await api.post("/api/v1/events", json=event("t1", "tokens", "pro_1", tokens=500))
    assert sent.status_code == 200

    body = await _entitlements(api, "pro_1")

    assert body["external_customer_id"] == "pro_1" and body["plan"] == "pro"
    assert body["features"] == {"export": True, "priority_support": False, "sso": False}
    by_code = {b["code"]: b for b in body["balances"]}
    assert (by_code["ai_requests"]["used"], by_code["ai_requests"]["available"]) == (3, 997)
    assert (by_code["tokens"]["used"], by_code["tokens"]["limit"]) == (500, 1_000_000)
    # The same balances as the usage API's own read.
    balances = (await api.get("/api/v1/customers/pro_1/balances")).json()["balances"]
    assert body["balances"] == balances

    # A new event shows at once (this process's write empties the cached sheet).
    assert (await api.post("/api/v1/events", json=event("a3", customer="pro_1"))).is_success
    again = await _entitlements(api, "pro_1")
    assert next(b for b in again["balances"] if b["code"] == "ai_requests")["used"] == 4


async def test_entitlements_of_an_unknown_customer_are_404(api):
    response = await api.get("/api/v1/customers/nobody/entitlements")
    assert response.status_code == 404
    assert response.json()["error"] == "customer_not_found"


async def _check(api, customer: str, feature: str, **params) -> tuple[int, dict]:
    response = await api.post(
        f"/api/v1/customers/{customer}/check", json={"feature": feature}, params=params
    )
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("plan", "feature", "allowed", "cheapest"),
    [
        ("free", "export", False, {"code": "pro", "name": "Pro"}),
        ("pro", "export", True, None),
        ("pro", "sso", False, {"code": "business", "name": "Business"}),
        ("business", "sso", True, None),
        ("business", "priority_support", True, None),
    ],
)
async def test_a_feature_check_answers_per_plan(api, plan, feature, allowed, cheapest):
    await create_customer(api, f"c_{plan}", plan=plan)

    status, body = await _check(api, f"c_{plan}", feature)

    assert status == 200
    assert body["allowed"] is allowed
    assert (body["feature"], body["plan"]) == (feature, plan)
    assert body["cheapest_plan"] == cheapest
    if allowed:
        assert body["upgrade_url"] is None
    else:
        assert body["upgrade_url"].endswith(UPGRADE_TAIL)


async def test_an_enforced_feature_check_is_403_with_the_upgrade_and_the_cheapest_plan(api):
    await create_customer(api, "free_1")

    status, body = await _check(api, "free_1", "export", enforce="true")

    assert status == 403
    assert body == {
        "error": "feature_not_in_plan",
        "message": "The Free plan does not include Data export. Pro includes it.",
        "feature": "export",
        "plan": "free",
        "upgrade_url": body["upgrade_url"],
        "cheapest_plan": {"code": "pro", "name": "Pro"},
    }
    assert body["upgrade_url"].startswith("http") and body["upgrade_url"].endswith(UPGRADE_TAIL)
    # Allowed, enforcement changes nothing; enforce=false is the plain question.
    await create_customer(api, "pro_2", plan="pro")
    assert (await _check(api, "pro_2", "export", enforce="true"))[1]["allowed"] is True
    assert (await _check(api, "free_1", "export", enforce="false"))[0] == 200


async def test_feature_checks_refuse_unknown_features_and_ambiguous_bodies(api):
    await create_customer(api)
    status, body = await _check(api, "cus_1", "teleport")
    assert (status, body["error"], body["field"]) == (404, "feature_not_found", "feature")
    assert (await _check(api, "nobody", "export"))[0] == 404
    both = await api.post(
        "/api/v1/customers/cus_1/check", json={"feature": "export", "code": "ai_requests"}
    )
    assert both.status_code == 422 and both.json()["field"] == "feature"
    neither = await api.post("/api/v1/customers/cus_1/check", json={"amount": 1})
    assert neither.status_code == 422 and neither.json()["field"] == "code"


# The quota in the 402 ------------------------------------------------------------------------


async def test_the_402_carries_the_quota_exactly_at_the_boundary(api):
    await create_customer(api)  # free: 20 AI requests a day
    for i in range(19):
        assert (await api.post("/api/v1/events", json=event(f"t{i}"))).status_code == 200
    last = await api.post("/api/v1/events", json=event("t19"))
    assert last.status_code == 200  # the 20th of 20 still fits

    refused = await api.post("/api/v1/events", json=event("t20"))

    assert refused.status_code == 402
    body = refused.json()
    assert (body["meter"], body["available"], body["required"]) == ("ai_requests", 0, 1)
    assert body["quota"] == {"used": 20, "limit": 20, "percentage": 100.0}
    assert body["upgrade_url"].endswith(UPGRADE_TAIL)
    # The balance read says the same.
    shown = await balance(api, "ai_requests")
    assert (shown["used"], shown["limit"], shown["percentage"]) == (20, 20, 100.0)


async def test_the_402_of_a_sum_meter_one_short_of_the_limit(api):
    await create_customer(api)  # free: 100,000 tokens
    fits = await api.post("/api/v1/events", json=event("t1", "tokens", tokens=99_999))
    assert fits.status_code == 200

    refused = await api.post("/api/v1/events", json=event("t2", "tokens", tokens=2))

    body = refused.json()
    assert refused.status_code == 402
    assert (body["available"], body["required"]) == (1, 2)
    # Rounded down: 99.999 % is not shown as 100.
    assert body["quota"] == {"used": 99_999, "limit": 100_000, "percentage": 99.9}
    assert (await api.post("/api/v1/events", json=event("t3", "tokens", tokens=1))).is_success


async def test_the_402_after_credits_counts_what_credits_paid_for(api):
    await create_customer(api)
    for i in range(20):
        assert (await api.post("/api/v1/events", json=event(f"t{i}"))).status_code == 200
    granted = await api.post(
        "/api/v1/customers/cus_1/credits",
        json={"code": "ai_requests", "amount": 3, "transaction_id": "g1"},
    )
    assert granted.status_code == 200
    for i in range(3):
        assert (await api.post("/api/v1/events", json=event(f"c{i}"))).status_code == 200

    body = (await api.post("/api/v1/events", json=event("over"))).json()

    assert body["available"] == 0
    assert body["quota"] == {"used": 23, "limit": 20, "percentage": 100.0}


async def test_every_402_of_the_usage_api_carries_the_quota(api):
    await create_customer(api)
    for i in range(18):
        assert (await api.post("/api/v1/events", json=event(f"t{i}"))).status_code == 200
    # 18 of 20: an enforced check of 3 is refused with the numbers as they stand.
    early = await api.post(
        "/api/v1/customers/cus_1/check",
        json={"code": "ai_requests", "amount": 3},
        params={"enforce": "true"},
    )
    assert early.status_code == 402
    assert (early.json()["available"], early.json()["required"]) == (2, 3)
    assert early.json()["quota"] == {"used": 18, "limit": 20, "percentage": 90.0}

    batch = await api.post(
        "/api/v1/events/batch",
        json={"events": [event("b1")["event"], event("b2")["event"], event("b3")["event"]]},
    )
    rejected = [e for e in batch.json()["events"] if e["status"] == "rejected"]
    assert [e["status_code"] for e in rejected] == [402]
    assert rejected[0]["quota"] == {"used": 20, "limit": 20, "percentage": 100.0}

    hold = await api.post(
        "/api/v1/reservations",
        json={
            "reservation": {
                "external_customer_id": "cus_1",
                "code": "ai_requests",
                "amount": 1,
                "transaction_id": "r1",
            }
        },
    )
    assert hold.status_code == 402
    assert hold.json()["quota"] == {"used": 20, "limit": 20, "percentage": 100.0}

    # A meter check answers the question; with enforce=true, the same 402 as a write.
    asked = await api.post("/api/v1/customers/cus_1/check", json={"code": "ai_requests"})
    assert (asked.status_code, asked.json()["allowed"]) == (200, False)
    enforced = await api.post(
        "/api/v1/customers/cus_1/check",
        json={"code": "ai_requests", "amount": 1},
        params={"enforce": "true"},
    )
    assert enforced.status_code == 402
    assert enforced.json() == {
        "error": "insufficient_balance",
        "message": "Not enough ai_requests left: 0 available, 1 required.",
        "meter": "ai_requests",
        "available": 0,
        "required": 1,
        "upgrade_url": enforced.json()["upgrade_url"],
        "quota": {"used": 20, "limit": 20, "percentage": 100.0},
    }
    fits = await api.post(
        "/api/v1/customers/cus_1/check",
        json={"code": "ai_requests", "amount": 0},
        params={"enforce": "true"},
    )
    assert (fits.status_code, fits.json()["allowed"]) == (200, True)
