"""Browser tests: a real `billing-portal serve` process driven by real Chromium through Playwright.

Fixtures
--------
``live_server``
    A running portal: ``billing-portal migrate`` and ``billing-portal seed-demo`` on a fresh
    SQLite database in a temp ``VAR_DIR``, then ``billing-portal serve --no-emulator`` on a free
    port, waited for until ``/health`` answers. Attributes:

    - ``url``      ``http://127.0.0.1:PORT`` (also the Playwright ``base_url``: ``page.goto("/login")``)
    - ``env``      the environment the server runs with (a copy is yours to change)
    - ``var_dir``  its ``VAR_DIR`` (the SQLite file, sessions, secrets, ``server.log``)
    - ``database_url``, ``port``, ``log()`` (the server's output so far)
    - ``cli("create-admin", "x@y.co", "--password", "...")`` runs ``billing-portal`` against the
      same database and returns its stdout (raises with its stderr when it fails)

    The demo logins exist (``app.demo.DEMO_USERS``, ``DEMO_ADMIN``). Tests share the server, so
    create your own users with random emails (``unique_email()``) rather than assume a clean DB.

``live_server_env`` (default ``{}``) and ``live_server_args`` (default ``("--no-emulator",)``)
    Override either in a test module or a conftest to run a differently configured server, e.g.
    the Stripe tests::

        @pytest.fixture(scope="module")
        def live_server_env(stripe_emulator):
            return {"STRIPE_API_BASE": stripe_emulator.url}

    or, to let ``serve`` start the emulator itself on a free port::

        EMULATOR_PORT = free_port()

        @pytest.fixture(scope="module")
        def live_server_env():
            return {"STRIPE_EMULATOR_PORT": str(EMULATOR_PORT)}

        @pytest.fixture(scope="module")
        def live_server_args():
            return ()

    Overrides must be module- or session-scoped. One server runs per distinct (env, args) for
    the whole session and is stopped at its end: that is why ``live_server`` itself is
    module-scoped (a session-scoped fixture is computed once, so a module's override would be
    silently ignored), while the server it hands out lives for the session. For several servers
    in one test, or one from a session-scoped fixture, use ``live_servers.start(env, args)``.

``page``, ``context``, ``browser`` ...
    pytest-playwright's, headless Debian Chromium (``/usr/bin/chromium``, or ``$CHROMIUM``),
    ``base_url`` = ``live_server.url``. Without Chromium every browser test is skipped with the
    reason shown in the summary. Pass ``--headed`` (with a display) to watch, and
    ``--screenshot only-on-failure --tracing retain-on-failure`` to keep artifacts in
    ``test-results/``.

Rules for tests in this package
-------------------------------
- Write them as plain ``def`` tests; no ``async def`` tests or fixtures here. While Playwright's
  sync API is alive, its event loop counts as *running* in the main thread (see
  ``playwright/_impl/_greenlets.py``), so ``asyncio.run`` and pytest-asyncio's runner raise
  "cannot be called from a running event loop". This conftest therefore keeps Playwright
  package-scoped: it starts with the first browser test here and stops when the run leaves
  ``tests/e2e``, so the async tests in other folders run normally after it (pytest-playwright's
  own fixtures are session-scoped, which broke every async test collected after ``tests/e2e``).
  To run async code from an e2e test (e.g. to read the database), use ``run_async(coro_fn)``,
  which runs it on a fresh loop in a worker thread.
- Wait with Playwright's auto-waiting ``expect(...)``; never sleep.
- When a test fails, the tail of each live server's log is attached to its report.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, BrowserType, Playwright, sync_playwright

from tests.servers import LOG_TAIL_LINES, LiveServer, LiveServers, ServerFailed

T = TypeVar("T")

CHROMIUM = Path(os.environ.get("CHROMIUM") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def unique_email(prefix: str = "e2e") -> str:
    return f"{prefix}-{secrets.token_hex(5)}@example.com"


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run `make()` to completion on a fresh event loop in a worker thread (see the docstring)."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


_SERVERS = pytest.StashKey[LiveServers]()


# --- live server fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def live_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServers]:
    servers = LiveServers(tmp_path_factory.mktemp("live"))
    request.config.stash[_SERVERS] = servers
    try:
        yield servers
    finally:
        servers.stop_all()


@pytest.fixture(scope="session")
def live_server_env() -> dict[str, str]:
    """Extra environment for the server; override (module or session scope) to change it."""
    return {}


@pytest.fixture(scope="session")
def live_server_args() -> tuple[str, ...]:
    """Arguments after `billing-portal serve`; override to e.g. let it start the emulator."""
    return ("--no-emulator",)


@pytest.fixture(scope="module")
def live_server(
    live_servers: LiveServers,
    live_server_env: dict[str, str],
    live_server_args: tuple[str, ...],
) -> LiveServer:
    try:
        return live_servers.start(live_server_env, tuple(live_server_args))
    except ServerFailed as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    servers = item.config.stash.get(_SERVERS, None)
    if report.failed and servers is not None:
        for server in servers.servers.values():
            report.sections.append(
                (f"live server {server.url} (last {LOG_TAIL_LINES} lines)", server.log_tail())
            )
    return report


# --- Playwright, package-scoped (see "Rules" above) ------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium not found at {CHROMIUM}: install Debian's chromium "
            "(sudo apt-get install chromium) or set CHROMIUM to its path"
        )
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="package")
def playwright(_pw_api_request_contexts: Any) -> Iterator[Playwright]:
    pw = sync_playwright().start()
    if _pw_api_request_contexts:
        _pw_api_request_contexts.instrument(pw)
    try:
        yield pw
    finally:
        pw.stop()


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    return getattr(playwright, browser_name)


@pytest.fixture(scope="package")
def launch_browser(
    browser_type_launch_args: dict[str, Any],
    browser_type: BrowserType,
    connect_options: dict[str, Any] | None,
) -> Callable[..., Browser]:
    def launch(**kwargs: Any) -> Browser:
        options = {**browser_type_launch_args, **kwargs}
        if connect_options:
            headers = {
                "x-playwright-launch-options": json.dumps(options),
                **(connect_options.get("headers") or {}),
            }
            return browser_type.connect(**{**connect_options, "headers": headers})
        return browser_type.launch(**options)

    return launch


@pytest.fixture(scope="package")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    browser = launch_browser()
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def browser_context_args(
    pytestconfig: pytest.Config,
    playwright: Playwright,
    device: str | None,
    live_server: LiveServer,
    _pw_artifacts_folder: Any,
) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if device:
        args.update(playwright.devices[device])
    args["base_url"] = live_server.url
    if pytestconfig.getoption("--video") in ("on", "retain-on-failure"):
        args["record_video_dir"] = _pw_artifacts_folder.name
    return args
