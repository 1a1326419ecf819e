"""Schemathesis against the served OpenAPI document: every API operation, with generated
bodies, paths and queries from the schema, on a real `billing-portal serve` with an API key.
No answer may be a 5xx, and every answer must match what the document says (its status, its
content type, its body schema). Bounded and deterministic: a few dozen examples per
operation, derandomized."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.db.engine import create_engine
from tests.conftest import _truncate as truncate
from tests.factories import api_key_in
from tests.servers import LiveServer, LiveServers

MAX_EXAMPLES = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[LiveServer]:
    """On the suite's database (PostgreSQL with TEST_DATABASE_URL, where text with a NUL was
    a 500), emptied afterwards like every test's."""
    servers = LiveServers(tmp_path_factory.mktemp("schemathesis"))
    try:
        yield servers.start(env={"DATABASE_URL": database_url}, seed=False)
    finally:
        servers.stop_all()
        asyncio.run(_empty(database_url))


async def _empty(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await truncate(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def api_key(server: LiveServer, database_url: str) -> str:
    key = api_key_in(database_url, "schemathesis")
    # A customer to find, so generated calls reach past "not found" now and then.
    response = httpx.post(
        f"{server.url}/api/v1/customers",
        json={"customer": {"external_id": "cus_1"}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return key


@pytest.fixture(scope="module")
def api_schema(server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{server.url}/schema/openapi.json").include(
        path_regex="^/api/"
    )


def operations(api_schema: schemathesis.BaseSchema) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


def test_every_api_operation_is_exercised(api_schema) -> None:
    assert len(operations(api_schema)) == 17


@pytest.mark.parametrize("index", range(17))
def test_the_api_answers_as_its_schema_says(api_schema, api_key: str, index: int) -> None:
    operation = operations(api_schema)[index]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {api_key}"}, checks=CHECKS)

    answers_as_documented()
