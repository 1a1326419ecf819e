"""The OpenAPI document at /schema describes the server API as it answers: its bodies, its
errors in the service's own shape, and no invented examples."""

from __future__ import annotations

from typing import Any

import pytest

# Per operation: the error statuses it can answer (401: every call needs a key).
OPERATIONS: dict[tuple[str, str], set[int]] = {
    ("post", "/api/v1/customers"): {401, 409, 422, 503},
    ("get", "/api/v1/customers/{external_id}"): {401, 404},
    ("post", "/api/v1/customers/{external_id}/convert"): {401, 404, 409, 422, 503},
    ("post", "/api/v1/events"): {401, 402, 404, 409, 422, 503},
    ("post", "/api/v1/events/batch"): {401, 422, 503},
    ("get", "/api/v1/customers/{external_id}/balances"): {401, 404},
    ("get", "/api/v1/customers/{external_id}/entitlements"): {401, 404},
    ("post", "/api/v1/customers/{external_id}/check"): {401, 402, 403, 404, 422},
    ("post", "/api/v1/reservations"): {401, 402, 404, 409, 422, 503},
    ("post", "/api/v1/reservations/{reservation_id}/commit"): {401, 402, 404, 409, 422, 503},
    ("post", "/api/v1/reservations/{reservation_id}/release"): {401, 404, 409, 503},
    ("post", "/api/v1/customers/{external_id}/credits"): {401, 404, 409, 422, 503},
    ("get", "/api/v1/customers/{external_id}/portal_url"): {401, 404},
    ("get", "/api/v1/customers/{external_id}/members"): {401, 404},
    ("post", "/api/v1/customers/{external_id}/members"): {401, 403, 404, 409, 422, 503},
    ("delete", "/api/v1/customers/{external_id}/members/{email}"): {401, 404, 409, 503},
    ("get", "/api/v1/plans"): {304},  # public: no key, so no 401
}
# The error statuses with a body of their own (the others are ApiError).
ERROR_BODIES = {402: "InsufficientBalanceError", 403: "FeatureNotInPlanError"}


@pytest.fixture
async def document(client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def json_schema(response: dict[str, Any]) -> dict[str, Any]:
    return response["content"]["application/json"]["schema"]


def keys_named(value: Any, names: set[str], at: str = "") -> list[str]:
    """Where in `value` a key in `names` occurs."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in names:
                found.append(f"{at}/{key}")
            found += keys_named(inner, names, f"{at}/{key}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += keys_named(inner, names, f"{at}/{index}")
    return found


async def test_every_api_operation_is_listed_here(document):
    served = {
        (method, path)
        for path, item in document["paths"].items()
        if path.startswith("/api/v1/")
        for method in item
    }
    assert served == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), list(OPERATIONS))
async def test_operation_documents_its_bodies_and_errors(document, method, path):
    responses = document["paths"][path][method]["responses"]

    successes = [status for status in responses if status.startswith("2")]
    assert successes, responses
    for status in successes:
        body = resolve(document, json_schema(responses[status]))
        # One shape, or one of several (a meter check or a feature check), each described.
        for shape in [resolve(document, one) for one in body.get("oneOf", [body])]:
            assert shape.get("properties"), (status, shape)
            for inner in shape["properties"].values():
                if "$ref" in inner:
                    assert resolve(document, inner).get("properties"), (status, inner)

    errors = {int(status) for status in responses if not status.startswith("2")}
    assert errors == OPERATIONS[(method, path)]
    for status in errors - {304}:
        schema = json_schema(responses[str(status)])
        expected = ERROR_BODIES.get(status, "ApiError")
        assert schema == {"$ref": f"#/components/schemas/{expected}"}, (status, schema)
    if 304 in errors:  # not modified: no body
        assert "content" not in responses["304"]

    assert not keys_named(responses, {"example", "examples"})


async def test_the_error_bodies_are_the_service_own(document):
    schemas = document["components"]["schemas"]
    error = schemas["ApiError"]
    assert {"error", "message", "field"} <= set(error["properties"])
    assert sorted(error["required"]) == ["error", "message"]
    balance = schemas["InsufficientBalanceError"]
    assert {"meter", "available", "required", "upgrade_url", "quota"} <= set(balance["required"])
    quota = resolve(document, balance["properties"]["quota"])
    assert set(quota["required"]) == {"used", "limit", "percentage"}
    refused = schemas["FeatureNotInPlanError"]
    assert {"feature", "plan", "upgrade_url", "cheapest_plan"} <= set(refused["required"])
    # Litestar's own error shape, which the API never sends, is described nowhere.
    api = {p: item for p, item in document["paths"].items() if p.startswith("/api/v1/")}
    assert not keys_named(api, {"400", "detail"})
    for name, schema in schemas.items():
        assert not {"status_code", "detail"} <= set(schema.get("properties", {})), name


async def test_no_invented_examples(document):
    assert not keys_named(document, {"example", "examples"})


async def test_the_schema_states_the_limits_the_server_enforces(document):
    """Lengths of the columns, 1 to 100 batch items, amount and ttl ranges, and a commit
    that needs no body: what a generated client (or schemathesis) must know."""
    schemas = document["components"]["schemas"]
    assert schemas["EventBatch"]["properties"]["events"]["minItems"] == 1
    assert schemas["EventBatch"]["properties"]["events"]["maxItems"] == 100
    reservation = schemas["ReservationIn"]["properties"]
    assert (
        reservation["transaction_id"]["minLength"],
        reservation["transaction_id"]["maxLength"],
    ) == (1, 255)
    assert reservation["code"]["maxLength"] == 64
    assert reservation["amount"]["minimum"] == 1 and reservation["amount"]["maximum"] == 10**15
    assert reservation["ttl_seconds"]["oneOf"][0] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 86_400,
    }
    assert schemas["EventIn"]["properties"]["transaction_id"]["maxLength"] == 255
    assert schemas["CreditsIn"]["properties"]["reason"]["maxLength"] == 500
    customer = schemas["CustomerIn"]["properties"]
    assert (customer["external_id"]["minLength"], customer["external_id"]["maxLength"]) == (1, 255)
    assert customer["name"]["maxLength"] == 255
    commit = document["paths"]["/api/v1/reservations/{reservation_id}/commit"]["post"]
    assert commit["requestBody"]["required"] is False
    (reservation_id,) = commit["parameters"]
    assert reservation_id["schema"]["maxLength"] == 36
    balances = document["paths"]["/api/v1/customers/{external_id}/balances"]["get"]
    assert balances["parameters"][0]["schema"]["maxLength"] == 255
