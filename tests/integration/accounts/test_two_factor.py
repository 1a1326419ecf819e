"""Two-factor login (issue 19, item 5) over HTTP: enrol, confirm, the login's second step,
codes used once, recovery codes, the throttle, REQUIRE_ADMIN_2FA, turning it off."""

from __future__ import annotations

import re
from dataclasses import replace

import httpx
import pyotp
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import second_step
from app.accounts.models import RecoveryCode, TwoFactor
from app.accounts.totp import time_step
from app.billing.portal_links import sign
from app.config import Settings
from app.lib.clock import utcnow
from tests.conftest import csrf_token
from tests.factories import PASSWORD, log_in, make_admin, make_user

_SECRET = re.compile(r'data-secret="([A-Z2-7]+)"')
_CODE = re.compile(r"<li><code>([a-z0-9-]{19})</code></li>")


async def post(
    client: AsyncTestClient[Litestar], path: str, data: dict[str, str], csrf_from: str = "/login"
) -> httpx.Response:
    token = await csrf_token(client, csrf_from)
    return await client.post(path, data={**data, "_csrf_token": token}, follow_redirects=False)


def code(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).generate_otp(time_step(utcnow()) + steps_ahead)


async def enrol(
    client: AsyncTestClient[Litestar], used: list[str] | None = None
) -> tuple[str, list[str]]:
    """Turn two-factor login on for the logged-in user: the secret and the recovery codes
    (the code that confirmed it appended to `used`)."""
    response = await post(client, "/account/two-factor/setup", {}, "/account/two-factor")
    assert response.status_code == 303
    assert response.headers["location"] == "/account/two-factor/setup"
    page = await client.get("/account/two-factor/setup")
    assert page.status_code == 200
    assert "<svg" in page.text and "<script" not in page.text.split("<svg")[1].split("</svg>")[0]
    match = _SECRET.search(page.text)
    assert match
    secret = match.group(1)
    confirm = code(secret)
    if used is not None:
        used.append(confirm)
    done = await post(client, "/account/two-factor/confirm", {"code": confirm}, "/billing")
    assert done.status_code == 200, done.text
    codes = _CODE.findall(done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert done.headers["cache-control"] == "no-store"
    return secret, codes


async def log_in_with_password(
    client: AsyncTestClient[Litestar], email: str, next: str = ""
) -> httpx.Response:
    data = {"email": email, "password": PASSWORD}
    if next:
        data["next"] = next
    return await post(client, "/login", data)


async def logged_in(client: AsyncTestClient[Litestar]) -> bool:
    return (await client.get("/billing", follow_redirects=False)).status_code == 200


async def log_out(client: AsyncTestClient[Litestar]) -> None:
    await post(client, "/logout", {}, "/login")
    assert not await logged_in(client)


@pytest.fixture
async def user(client: AsyncTestClient[Litestar], session: AsyncSession, catalog):  # type: ignore[no-untyped-def]
    made = await make_user(session, catalog)
    await session.rollback()  # end its read: the test reads what the app commits later
    # Through the form: the session cookie is the app's own (logout replaces it).
    assert (await log_in_with_password(client, made.email)).status_code == 303
    return made


async def test_enrol_then_login_asks_for_the_code(
    client: AsyncTestClient[Litestar], session: AsyncSession, user
) -> None:
    page = await client.get("/account/two-factor")
    assert 'data-testid="two-factor-start"' in page.text
    secret, _codes = await enrol(client)
    await session.rollback()
    row = await session.scalar(select(TwoFactor).where(TwoFactor.user_id == user.id))
    assert row is not None and row.confirmed_at is not None
    assert secret not in row.secret_encrypted  # encrypted at rest
    stored = list(await session.scalars(select(RecoveryCode.code_hash)))
    assert len(stored) == 10 and not any(c in stored for c in _codes)
    await log_out(client)

    response = await log_in_with_password(client, user.email, next="/billing/invoices")
    assert response.status_code == 303
    assert response.headers["location"] == "/login/two-factor"
    page = await client.get("/login/two-factor")
    assert page.status_code == 200 and 'name="code"' in page.text
    # The password alone logs nobody in (and leaving the second step ends it).
    assert not await logged_in(client)
    assert (await client.get("/login/two-factor", follow_redirects=False)).status_code == 303
    await log_in_with_password(client, user.email, next="/billing/invoices")

    wrong = await post(client, "/login/two-factor", {"code": "000000"})
    assert wrong.status_code == 400
    ok = await post(client, "/login/two-factor", {"code": code(secret, 1)})
    assert ok.status_code == 303
    assert ok.headers["location"] == "/billing/invoices"
    assert await logged_in(client)


async def test_a_code_is_used_once(client: AsyncTestClient[Litestar], user) -> None:
    used: list[str] = []
    secret, _ = await enrol(client, used)
    next_code = code(secret, 1)  # the same string all along, whatever the clock does
    await log_out(client)
    await log_in_with_password(client, user.email)
    reused = await post(client, "/login/two-factor", {"code": used[0]})
    assert reused.status_code == 400
    assert (await post(client, "/login/two-factor", {"code": next_code})).status_code == 303
    await log_out(client)
    await log_in_with_password(client, user.email)
    again = await post(client, "/login/two-factor", {"code": next_code})
    assert again.status_code == 400
    assert not await logged_in(client)


async def test_a_recovery_code_logs_in_once(client: AsyncTestClient[Litestar], user) -> None:
    _, codes = await enrol(client)
    await log_out(client)
    await log_in_with_password(client, user.email)
    typed = codes[3].upper().replace("-", " ")  # as a person might type it
    response = await post(client, "/login/two-factor", {"code": typed})
    assert response.status_code == 303
    status = await client.get("/account/two-factor")
    assert "9 recovery codes left" in status.text
    await log_out(client)
    await log_in_with_password(client, user.email)
    assert (await post(client, "/login/two-factor", {"code": codes[3]})).status_code == 400
    assert not await logged_in(client)


async def test_wrong_codes_are_throttled(
    client: AsyncTestClient[Litestar], settings: Settings, user
) -> None:
    secret, _ = await enrol(client)
    await log_out(client)
    await log_in_with_password(client, user.email)
    for _ in range(settings.login_rate_limit):
        assert (await post(client, "/login/two-factor", {"code": "123456"})).status_code == 400
    refused = await post(client, "/login/two-factor", {"code": code(secret, 1)})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert not await logged_in(client)


async def test_the_second_step_expires(
    client: AsyncTestClient[Litestar], user, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, _ = await enrol(client)
    await log_out(client)
    await log_in_with_password(client, user.email)
    later = utcnow().timestamp() + second_step.PENDING_SECONDS + 1
    monkeypatch.setattr(
        second_step, "utcnow", lambda: utcnow().fromtimestamp(later, tz=utcnow().tzinfo)
    )
    response = await post(client, "/login/two-factor", {"code": code(secret, 1)})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert not await logged_in(client)


async def test_without_a_pending_login_the_second_step_is_no_way_in(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/login/two-factor", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    posted = await post(client, "/login/two-factor", {"code": "123456"})
    assert posted.status_code == 303 and posted.headers["location"] == "/login"


async def test_a_wrong_code_does_not_turn_it_on(
    client: AsyncTestClient[Litestar], session: AsyncSession, user
) -> None:
    await post(client, "/account/two-factor/setup", {}, "/account/two-factor")
    response = await post(client, "/account/two-factor/confirm", {"code": "000000"}, "/billing")
    assert response.status_code == 422
    assert "not right" in response.text
    await session.rollback()
    row = await session.scalar(select(TwoFactor).where(TwoFactor.user_id == user.id))
    assert row is not None and row.confirmed_at is None
    await log_out(client)
    response = await log_in_with_password(client, user.email)
    assert response.headers["location"] == "/billing"  # no second step: it is not on


async def test_turning_it_off_asks_the_password_and_a_code(
    client: AsyncTestClient[Litestar], session: AsyncSession, user
) -> None:
    secret, _ = await enrol(client)
    bad_password = await post(
        client,
        "/account/two-factor/disable",
        {"password": "not it at all", "code": code(secret, 1)},
        "/billing",
    )
    assert bad_password.status_code == 422
    bad_code = await post(
        client, "/account/two-factor/disable", {"password": PASSWORD, "code": "000000"}, "/billing"
    )
    assert bad_code.status_code == 422
    await session.rollback()
    assert await session.scalar(select(TwoFactor.user_id)) == user.id
    off = await post(
        client,
        "/account/two-factor/disable",
        {"password": PASSWORD, "code": code(secret, 1)},
        "/billing",
    )
    assert off.status_code == 303
    await session.rollback()
    assert await session.scalar(select(TwoFactor.user_id)) is None
    assert await session.scalar(select(RecoveryCode.id)) is None
    await log_out(client)
    response = await log_in_with_password(client, user.email)
    assert response.headers["location"] == "/billing"


async def test_new_recovery_codes_replace_the_old_ones(
    client: AsyncTestClient[Litestar], user
) -> None:
    secret, old = await enrol(client)
    response = await post(
        client, "/account/two-factor/recovery-codes", {"code": code(secret, 1)}, "/billing"
    )
    assert response.status_code == 200
    new = _CODE.findall(response.text)
    assert len(new) == 10 and not set(new) & set(old)
    await log_out(client)
    await log_in_with_password(client, user.email)
    assert (await post(client, "/login/two-factor", {"code": old[0]})).status_code == 400
    assert (await post(client, "/login/two-factor", {"code": new[0]})).status_code == 303


class TestRequireAdmin2fa:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return replace(settings, require_admin_2fa=True)

    async def test_an_admin_without_it_is_sent_to_enrol(
        self, client: AsyncTestClient[Litestar], session: AsyncSession, catalog
    ) -> None:
        admin = await make_admin(session, catalog)
        await session.rollback()
        assert (await log_in_with_password(client, admin.email)).status_code == 303
        refused = await client.get("/admin/billing/customers", follow_redirects=False)
        assert refused.status_code == 303
        assert refused.headers["location"] == "/account/two-factor"
        await enrol(client)
        assert (
            await client.get("/admin/billing/customers", follow_redirects=False)
        ).status_code == 200

    async def test_other_users_pages_are_unchanged(
        self, client: AsyncTestClient[Litestar], user
    ) -> None:
        assert await logged_in(client)
        assert (
            await client.get("/admin/billing/customers", follow_redirects=False)
        ).status_code == 403


async def test_admins_need_not_enrol_by_default(
    client: AsyncTestClient[Litestar], session: AsyncSession, catalog
) -> None:
    admin = await make_admin(session, catalog)
    await log_in(client, admin.id)
    assert (await client.get("/admin/billing/customers", follow_redirects=False)).status_code == 200


async def test_a_portal_link_asks_for_the_code_too(client: AsyncTestClient[Litestar], user) -> None:
    secret, _ = await enrol(client)
    await log_out(client)
    key = client.app.state["settings"].secret_key
    response = await client.post(
        f"/portal/{sign(key, user.public_id, utcnow())}", follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/login/two-factor"
    ok = await post(client, "/login/two-factor", {"code": code(secret, 1)})
    assert ok.status_code == 303 and ok.headers["location"] == "/billing"
    assert await logged_in(client)
