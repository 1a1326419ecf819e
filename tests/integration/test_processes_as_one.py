"""Several processes behave as one (issue 18, item 4): PostgreSQL and Redis shared by three
serving processes, `serve --workers 2` on one port (A) and a second `serve` on another (B).

A login on one is valid on the others; failed logins and unknown API keys counted on one count
on the others; usage written through one shows in another's cached balances within the
notification's latency and on its pages; a plan change and a key revocation hold everywhere.
Requests to A reach either of its two workers; each check that must hold in both reads A
several times.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis

from app.catalog.loader import load_catalog
from app.config import PROJECT_ROOT
from tests.factories import api_key_in, revoke_key_in, user_in
from tests.servers import LiveServer, LiveServers, record_usage
from tests.support import configured_database_url, wait_until

# This suite's own database index, flushed here (.ci/run exports it).
REDIS_URL = os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/9"
PG_REASON = "PostgreSQL not configured: set TEST_DATABASE_URL (as .ci/run does) to run this"
# NOTIFY's latency plus the usage announcement's gathering (20 ms): well below what the caches'
# expiry alone would give (1 s for balances, 5 s for keys).
BOUND_SECONDS = 0.5
LOGIN_LIMIT = 3
KEY_FAILURE_LIMIT = 3
# Reads of A per check: requests reach either worker, so several reads ask both.
READS_OF_A = 6
_CSRF_INPUT = re.compile(r'name="_csrf_token" value="([^"]+)"')


def _redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).flushdb()
    except redis.RedisError:
        pytest.skip(
            f"Redis not reachable at {REDIS_URL} (set TEST_REDIS_URL, as .ci/run does): "
            "processes sharing Redis are untested"
        )


@dataclass
class Processes:
    a: LiveServer  # two workers
    b: LiveServer
    database_url: str

    def everywhere(self) -> list[LiveServer]:
        return [self.a] * READS_OF_A + [self.b]


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    url = configured_database_url()
    if not url:
        pytest.skip(PG_REASON)
    _redis_or_skip()
    servers = LiveServers(tmp_path_factory.mktemp("as-one"))
    env = {
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "s" * 40,
        "LOGIN_RATE_LIMIT": str(LOGIN_LIMIT),
        "API_KEY_FAILURE_LIMIT": str(KEY_FAILURE_LIMIT),
        # Each test comes from its own client address (X-Forwarded-For), so limits reached
        # by one test do not touch another.
        "TRUSTED_PROXIES": "127.0.0.1",
    }
    try:
        a = servers.start(env, args=("--no-emulator", "--workers", "2"), seed=False)
        b = servers.start({**env, "WHICH": "b"}, seed=False)
        yield Processes(a, b, url)
    finally:
        servers.stop_all()


def _client(address: str) -> httpx.Client:
    """A browser at its own address: the cookies it gets from one process go to all."""
    return httpx.Client(headers={"X-Forwarded-For": address}, follow_redirects=False)


_ADDRESSES = itertools.count(1)


def _address() -> str:
    """A client address no other request of this module used."""
    n = next(_ADDRESSES)
    return f"10.{n // 62500 % 250}.{n // 250 % 250}.{n % 250 + 1}"


def _log_in(client: httpx.Client, server: LiveServer, email: str, password: str) -> int:
    form = client.get(f"{server.url}/login")
    match = _CSRF_INPUT.search(form.text)
    assert match, form.text
    answer = client.post(
        f"{server.url}/login",
        data={"email": email, "password": password, "_csrf_token": match.group(1)},
    )
    return answer.status_code


def _headers(key: str, address: str = "192.0.2.10") -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "X-Forwarded-For": address}


def _api_calls(server: LiveServer, key: str, external_id: str) -> dict[str, object]:
    answer = httpx.get(
        f"{server.url}/api/v1/customers/{external_id}/balances", headers=_headers(key)
    )
    assert answer.status_code == 200, answer.text
    return next(b for b in answer.json()["balances"] if b["code"] == "api_calls")


def _everywhere(processes: Processes, check: Callable[[LiveServer], bool], what: str) -> None:
    """`check` holds in all three processes within the bound."""
    wait_until(
        lambda: all(check(server) for server in processes.everywhere()),
        timeout=BOUND_SECONDS,
        what=what,
    )


def _record(server: LiveServer, key: str, external_id: str, count: int) -> None:
    record_usage(server, key, external_id, count, {"X-Forwarded-For": "192.0.2.10"})


def _api_customer(processes: Processes, plan: str = "free") -> tuple[str, str]:
    key = api_key_in(processes.database_url, "as-one")
    external_id = f"one-{uuid.uuid4().hex[:8]}"
    created = httpx.post(
        f"{processes.a.url}/api/v1/customers",
        headers=_headers(key),
        json={"customer": {"external_id": external_id, "plan": plan}},
    )
    assert created.status_code == 200, created.text
    return key, external_id


def test_a_login_on_one_process_is_valid_on_the_others(processes: Processes) -> None:
    user = user_in(processes.database_url, load_catalog(PROJECT_ROOT / "catalog.toml"))
    with _client(_address()) as browser:
        assert _log_in(browser, processes.b, user.email, user.password) == 303
        for server in processes.everywhere():
            page = browser.get(f"{server.url}/billing")
            assert page.status_code == 200, (server.url, page.status_code)
            assert 'data-testid="meter-api_calls"' in page.text
        # And a logout on one ends it on all.
        form = _CSRF_INPUT.search(browser.get(f"{processes.a.url}/billing").text)
        assert form is not None
        out = browser.post(f"{processes.a.url}/logout", data={"_csrf_token": form.group(1)})
        assert out.status_code == 303
        assert browser.get(f"{processes.b.url}/billing").status_code == 303


def test_failed_logins_on_one_process_count_on_the_others(processes: Processes) -> None:
    user = user_in(processes.database_url, load_catalog(PROJECT_ROOT / "catalog.toml"))
    with _client(_address()) as browser:
        # LOGIN_LIMIT failures spread over the processes (A's two workers take turns)...
        for n in range(LOGIN_LIMIT):
            server = processes.a if n % 2 == 0 else processes.b
            assert _log_in(browser, server, user.email, "wrong password") == 400
        # ...and the next attempt is refused by each, the right password unchecked.
        for server in (processes.b, processes.a, processes.a):
            assert _log_in(browser, server, user.email, user.password) == 429
    with _client(_address()) as elsewhere:  # the limit is this address's, for this account
        assert _log_in(elsewhere, processes.b, user.email, user.password) == 303


def test_unknown_api_keys_on_one_process_count_on_the_others(processes: Processes) -> None:
    address = _address()
    url = "/api/v1/customers/nobody/balances"
    for n in range(KEY_FAILURE_LIMIT):
        server = processes.a if n % 2 == 0 else processes.b
        guess = httpx.get(server.url + url, headers=_headers(f"bp_guess{n}", address))
        assert guess.status_code == 401, guess.text
    for server in (processes.b, processes.a, processes.a):
        refused = httpx.get(server.url + url, headers=_headers("bp_guess-next", address))
        assert refused.status_code == 429, refused.text
        assert "Retry-After" in refused.headers
    # Another address is not limited.
    other = httpx.get(processes.b.url + url, headers=_headers("bp_guess-other", _address()))
    assert other.status_code == 401


def test_usage_written_through_one_process_shows_in_the_others_within_the_bound(
    processes: Processes,
) -> None:
    key, external_id = _api_customer(processes)
    # Every process caches the balances (1 s), then usage goes through A...
    for server in processes.everywhere():
        assert _api_calls(server, key, external_id)["used"] == 0
    _record(processes.a, key, external_id, 4)
    _everywhere(
        processes,
        lambda s: _api_calls(s, key, external_id)["used"] == 4,
        "A's usage in every process's cached balances",
    )
    # ...and through B.
    _record(processes.b, key, external_id, 3)
    _everywhere(
        processes,
        lambda s: _api_calls(s, key, external_id)["used"] == 7,
        "B's usage in every process's cached balances",
    )


def test_usage_through_the_api_shows_on_the_dashboard_of_every_process(
    processes: Processes,
) -> None:
    user = user_in(processes.database_url, load_catalog(PROJECT_ROOT / "catalog.toml"))
    key = api_key_in(processes.database_url, "as-one-pages")
    with _client(_address()) as browser:
        assert _log_in(browser, processes.a, user.email, user.password) == 303
        for server in processes.everywhere():
            assert "0 of 1,000 used" in browser.get(f"{server.url}/billing").text
        _record(processes.b, key, user.external_id, 5)
        _everywhere(
            processes,
            lambda s: "5 of 1,000 used" in browser.get(f"{s.url}/billing").text,
            "B's usage on every process's dashboard",
        )


def test_a_plan_change_holds_in_every_process(processes: Processes) -> None:
    key, external_id = _api_customer(processes, "free")
    for server in processes.everywhere():
        assert _api_calls(server, key, external_id)["limit"] == 1_000
    changed = httpx.post(
        f"{processes.b.url}/api/v1/customers",
        headers=_headers(key),
        json={"customer": {"external_id": external_id, "plan": "pro"}},
    )
    assert changed.status_code == 200, changed.text
    _everywhere(
        processes,
        lambda s: _api_calls(s, key, external_id)["limit"] == 10_000,
        "the plan change in every process's cached balances",
    )


def test_a_revoked_key_is_refused_by_every_process(processes: Processes) -> None:
    key, external_id = _api_customer(processes)
    other, _ = _api_customer(processes)
    for server in processes.everywhere():  # cached as valid everywhere
        assert _api_calls(server, key, external_id)["used"] == 0

    revoke_key_in(processes.database_url, key)

    def refused(server: LiveServer) -> bool:
        return (
            httpx.get(
                f"{server.url}/api/v1/customers/{external_id}/balances",
                # Each from its own address: past API_KEY_FAILURE_LIMIT one would get a 429.
                headers=_headers(key, _address()),
            ).status_code
            == 401
        )

    _everywhere(processes, refused, "the revoked key refused by every process")
    for server in processes.everywhere():  # other keys keep working
        assert _api_calls(server, other, external_id)["used"] == 0
