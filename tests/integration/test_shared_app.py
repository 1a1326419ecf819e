"""The suite shares one app per distinct settings (tests/conftest.py `SharedApps`): what a test
leaves in the app's memory and VAR_DIR must not reach the next test, as if the process had
restarted. `forget_process_state` is what the `app` fixture runs before each test."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.config import Settings
from tests.conftest import csrf_token, forget_process_state
from tests.factories import log_in_new_user


async def _log_in(client: AsyncTestClient[Litestar], email: str, password: str) -> int:
    token = await csrf_token(client, "/login")
    response = await client.post(
        "/login",
        data={"email": email, "password": password, "_csrf_token": token},
        follow_redirects=False,
    )
    return response.status_code


async def test_the_next_test_finds_no_session_no_failed_logins_no_cached_balance(
    app: Litestar, client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    user = await log_in_new_user(client)
    assert (await client.get("/billing")).status_code == 200
    for _ in range(settings.login_rate_limit):
        assert await _log_in(client, user.email, "not the password") == 400
    assert await _log_in(client, user.email, user.password) == 429
    writer = app.state["usage_writer"]
    writer.balances.put(user.external_id, {"stale": True})

    await forget_process_state(app)

    assert (await client.get("/billing", follow_redirects=False)).status_code == 303
    assert writer.balances.get(user.external_id) is None
    assert await _log_in(client, user.email, user.password) == 303


async def test_tests_with_the_same_settings_share_one_app(
    app: Litestar, settings: Settings, catalog, shared_apps
) -> None:
    assert shared_apps.get(settings, catalog) is app
