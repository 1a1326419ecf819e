"""The usage API on a real `billing-portal serve`: Lago's client, crash safety, many processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import Iterator

import httpx
import pytest
from lago_python_client.client import Client as LagoClient
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import Customer as LagoCustomer
from lago_python_client.models import Event as LagoEvent

from tests.factories import api_key_in
from tests.servers import LiveServer, LiveServers
from tests.support import configured_database_url

PG_REASON = "PostgreSQL not configured: set TEST_DATABASE_URL (as .ci/run does) to run this"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServers]:
    servers = LiveServers(tmp_path_factory.mktemp("api-servers"))
    try:
        yield servers
    finally:
        servers.stop_all()


def _api_key(server: LiveServer) -> str:
    return server.cli("create-api-key", "tests").strip().splitlines()[-1]


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_lagos_official_client_works_unchanged(servers: LiveServers):
    server = servers.start(seed=False)
    client = LagoClient(api_key=_api_key(server), api_url=server.url)
    customer = client.customers.create(
        LagoCustomer(external_id="lago_1", email="lago@example.com", name="Lago User")
    )
    assert customer.external_id == "lago_1" and customer.lago_id
    event = LagoEvent(
        transaction_id="lago-tx-1",
        external_subscription_id="lago_1",
        code="tokens",
        timestamp=1767225600,
        properties={"tokens": 250},
    )
    created = client.events.create(event)
    assert created.transaction_id == "lago-tx-1" and created.code == "tokens"
    client.events.create(event)  # a retry is the same event
    found = client.customers.find("lago_1")
    assert found.email == "lago@example.com"
    with pytest.raises(LagoApiError) as error:
        client.customers.find("nobody")
    assert error.value.status_code == 404
    balances = httpx.get(
        f"{server.url}/api/v1/customers/lago_1/balances", headers=_headers(client.api_key)
    ).json()["balances"]
    assert next(b for b in balances if b["code"] == "tokens")["used"] == 250


async def _fire(
    url: str, key: str, tx_ids: list[str], acked: set[str], stop_after: int | None, on_stop
) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for tx in tx_ids:
        queue.put_nowait(tx)
    async with httpx.AsyncClient(base_url=url, headers=_headers(key), timeout=10) as client:

        async def worker() -> None:
            while not queue.empty():
                tx = queue.get_nowait()
                body = {
                    "event": {
                        "transaction_id": tx,
                        "external_customer_id": "crash",
                        "code": "ai_requests",
                    }
                }
                try:
                    response = await client.post("/api/v1/events", json=body)
                except httpx.TransportError:
                    continue
                if response.status_code == 200:
                    acked.add(tx)
                    if stop_after is not None and len(acked) >= stop_after:
                        on_stop()

        await asyncio.gather(*(worker() for _ in range(32)))


def _events_in(db_path: str) -> dict[str, int]:
    with sqlite3.connect(db_path) as conn:
        return dict(conn.execute("SELECT transaction_id, amount FROM usage_events").fetchall())


def test_sigkill_loses_no_acknowledged_event_and_retries_count_once(servers: LiveServers, tmp_path):
    db = tmp_path / "crash.db"
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{db}", "SECRET_KEY": "k" * 40}
    first = servers.start(env, seed=False)
    key = api_key_in(env["DATABASE_URL"])
    created = httpx.post(
        f"{first.url}/api/v1/customers",
        headers=_headers(key),
        json={"customer": {"external_id": "crash", "plan": "business"}},
    )
    assert created.status_code == 200
    tx_ids = [f"crash-{i}" for i in range(1500)]
    acked: set[str] = set()
    killed = []

    def kill() -> None:
        if not killed and first.process is not None:
            killed.append(True)
            os.killpg(first.process.pid, signal.SIGKILL)

    asyncio.run(_fire(first.url, key, tx_ids, acked, stop_after=300, on_stop=kill))
    assert killed, "the load finished before the server was killed"
    first.process.wait(timeout=10)
    stored = _events_in(str(db))
    missing = acked - set(stored)
    assert not missing, f"{len(missing)} acknowledged events were lost"
    assert len(stored) < len(tx_ids)

    # The same database, a new process (a distinct env starts a distinct server).
    second = servers.start({**env, "RESTARTED": "1"}, seed=False)
    retried: set[str] = set()
    asyncio.run(_fire(second.url, key, tx_ids, retried, stop_after=None, on_stop=lambda: None))
    assert retried == set(tx_ids)
    stored = _events_in(str(db))
    assert len(stored) == len(tx_ids)
    balances = httpx.get(
        f"{second.url}/api/v1/customers/crash/balances", headers=_headers(key)
    ).json()
    assert next(b for b in balances["balances"] if b["code"] == "ai_requests")["used"] == len(
        tx_ids
    )


@pytest.mark.skipif(not configured_database_url(), reason=PG_REASON)
@pytest.mark.parametrize("credits", [80, 0])
def test_four_server_processes_on_postgresql_never_overdraw(servers: LiveServers, credits: int):
    """With credits every batch takes the locked way until they are used up; without, the
    events are written without locks (app/metering/unlocked.py) while reservations take locks."""
    url = configured_database_url()
    assert url and url.startswith("postgresql")
    server = servers.start(
        {"DATABASE_URL": url, "SECRET_KEY": "p" * 40},
        ("--no-emulator", "--workers", "4"),
        seed=False,
    )
    key = _api_key(server)
    external_id = f"pg4-{os.getpid()}-{credits}"
    httpx.post(
        f"{server.url}/api/v1/customers",
        headers=_headers(key),
        json={"customer": {"external_id": external_id}},
    ).raise_for_status()
    if credits:
        httpx.post(
            f"{server.url}/api/v1/customers/{external_id}/credits",
            headers=_headers(key),
            json={
                "code": "ai_requests",
                "amount": credits,
                "transaction_id": "fund",
                "reason": "test",
            },
        ).raise_for_status()

    async def load() -> list[int]:
        async with httpx.AsyncClient(
            base_url=server.url, headers=_headers(key), timeout=30
        ) as client:

            async def one(i: int) -> int:
                if i % 10 == 0:
                    body = {
                        "reservation": {
                            "external_customer_id": external_id,
                            "code": "ai_requests",
                            "amount": 2,
                            "transaction_id": f"pr{i}",
                        }
                    }
                    return (await client.post("/api/v1/reservations", json=body)).status_code
                body = {
                    "event": {
                        "transaction_id": f"pe{i}",
                        "external_customer_id": external_id,
                        "code": "ai_requests",
                    }
                }
                return (await client.post("/api/v1/events", json=body)).status_code

            return await asyncio.gather(*(one(i) for i in range(200)))

    statuses = asyncio.run(load())
    assert set(statuses) <= {200, 201, 402}
    units = sum(2 if i % 10 == 0 else 1 for i, s in enumerate(statuses) if s in (200, 201))
    assert units == 20 + credits  # the free plan's 20 a day, then the credits
    balance = httpx.get(
        f"{server.url}/api/v1/customers/{external_id}/balances", headers=_headers(key)
    ).json()
    ai = next(b for b in balance["balances"] if b["code"] == "ai_requests")
    assert ai["used"] + ai["reserved"] == 20 + credits and ai["available"] == 0
