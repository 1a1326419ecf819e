"""Bad input gets a clear error, never a 500: random bodies against every write endpoint."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.metering.conftest import create_customer

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=300),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
fields = {
    "transaction_id": st.one_of(json_values, st.text(max_size=300)),
    "external_customer_id": st.one_of(st.just("fuzz"), json_values),
    "external_subscription_id": st.one_of(st.none(), st.just("fuzz"), json_values),
    "code": st.one_of(st.sampled_from(["ai_requests", "tokens", "nope"]), json_values),
    "timestamp": st.one_of(
        st.none(),
        st.integers(-(2**66), 2**66),
        st.text(max_size=40),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    "properties": st.one_of(
        st.none(),
        st.fixed_dictionaries({"tokens": json_values}),
        json_values,
    ),
    "amount": json_values,
    "ttl_seconds": json_values,
    "reason": json_values,
    "expires_at": json_values,
}
objects = st.fixed_dictionaries({}, optional=fields)
ENDPOINTS = [
    ("/api/v1/events", lambda o: {"event": o}),
    ("/api/v1/events/batch", lambda o: {"events": [o, o]}),
    ("/api/v1/reservations", lambda o: {"reservation": o}),
    ("/api/v1/customers/fuzz/credits", lambda o: o),
    ("/api/v1/customers/fuzz/check", lambda o: o),
    ("/api/v1/customers", lambda o: {"customer": {**o, "external_id": o.get("transaction_id")}}),
]
EXPECTED = {200, 201, 402, 404, 409, 422}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=objects, endpoint=st.sampled_from(ENDPOINTS), raw=st.booleans())
async def test_random_bodies_never_500(api, body: dict[str, Any], endpoint, raw: bool):
    await create_customer(api, "fuzz")
    path, wrap = endpoint
    payload = body if raw else wrap(body)
    response = await api.post(path, json=payload)
    assert response.status_code in EXPECTED, (path, payload, response.text)
    assert response.headers["content-type"].startswith("application/json")
    if response.status_code >= 400:
        assert response.json()["error"] and response.json()["message"]
    if response.status_code == 422:  # the caller learns which field to fix
        assert response.json().get("field"), (path, payload, response.text)
