"""Sign up, log in, log out, CSRF, session expiry, rate limiting, admin guard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.accounts.service import LOGIN_FAILED
from app.lib import clock
from tests.conftest import csrf_token, signup

PASSWORD = "correct horse battery"


async def login(client: AsyncTestClient[Litestar], email: str, password: str):
    token = await csrf_token(client)
    return await client.post(
        "/login",
        data={"email": email, "password": password, "_csrf_token": token},
        follow_redirects=False,
    )


async def test_signup_lands_on_billing_with_the_default_plan(client):
    await signup(client, "ada@example.com")
    response = await client.get("/billing")
    assert response.status_code == 200
    assert 'data-testid="current-plan"' in response.text
    assert "Free" in response.text


async def test_logout_then_login_again(client):
    await signup(client, "ada@example.com")
    token = await csrf_token(client, "/billing")
    response = await client.post("/logout", data={"_csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert (await client.get("/billing", follow_redirects=False)).status_code == 303
    response = await login(client, "ADA@example.com ", PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"] == "/billing"
    assert (await client.get("/billing")).status_code == 200


async def test_unauthenticated_page_redirects_to_login_with_next(client):
    response = await client.get("/billing?tab=usage", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/billing%3Ftab%3Dusage"


async def test_wrong_password_and_unknown_email_get_the_same_message(client):
    await signup(client, "ada@example.com")
    await client.post("/logout", data={"_csrf_token": await csrf_token(client, "/billing")})
    wrong = await login(client, "ada@example.com", "not the password")
    unknown = await login(client, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 400
    assert LOGIN_FAILED in wrong.text and LOGIN_FAILED in unknown.text
    assert (await client.get("/billing", follow_redirects=False)).status_code == 303


async def test_duplicate_email_is_refused(client):
    await signup(client, "ada@example.com")
    await client.post("/logout", data={"_csrf_token": await csrf_token(client, "/billing")})
    token = await csrf_token(client, "/signup")
    response = await client.post(
        "/signup",
        data={"email": "Ada@Example.com", "password": PASSWORD, "_csrf_token": token},
    )
    assert response.status_code == 409
    assert "already exists" in response.text


@pytest.mark.parametrize(
    ("email", "password", "name", "message"),
    [
        ("", PASSWORD, "", "Enter your email address."),
        ("not-an-email", PASSWORD, "", "Enter a valid email address"),
        ("a" * 250 + "@example.com", PASSWORD, "", "at most 254"),
        ("ada@example.com", "", "", "Enter a password."),
        ("ada@example.com", "short", "", "at least 8"),
        ("ada@example.com", "x" * 129, "", "at most 128"),
        ("ada@example.com", " " * 8, "", "cannot be only spaces"),
        ("ada@example.com", "password", "", "most common"),
        ("ada@example.com", "12345678", "", "most common"),
        ("ada@example.com", "ada@example.com", "", "cannot be your email"),
        ("ada@example.com", PASSWORD, "n" * 121, "at most 120"),
    ],
)
async def test_bad_signup_input_is_explained_and_writes_nothing(
    client, email, password, name, message
):
    token = await csrf_token(client, "/signup")
    response = await client.post(
        "/signup",
        data={"email": email, "password": password, "name": name, "_csrf_token": token},
    )
    assert response.status_code == 422
    assert message in response.text
    assert (await login(client, "ada@example.com", PASSWORD)).status_code == 400


async def test_post_without_csrf_token_is_rejected(client):
    await client.get("/login")
    response = await client.post("/signup", data={"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 403
    assert (await login(client, "ada@example.com", PASSWORD)).status_code == 400


async def test_session_expires(client, settings, monkeypatch):
    await signup(client, "ada@example.com")
    assert (await client.get("/billing")).status_code == 200
    later = clock.utcnow() + timedelta(seconds=settings.session_max_age + 1)
    monkeypatch.setattr(clock, "utcnow", lambda: later)
    monkeypatch.setattr("app.accounts.auth.utcnow", lambda: later)
    response = await client.get("/billing", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


async def test_session_cookie_flags(client):
    await signup(client, "ada@example.com")
    response = await login(client, "ada@example.com", PASSWORD)
    cookie = next(
        v
        for k, v in response.headers.multi_items()
        if k == "set-cookie" and v.startswith("session=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie


async def test_failed_logins_are_rate_limited(client, settings):
    for _ in range(settings.login_rate_limit):
        assert (await login(client, "ada@example.com", "wrong password")).status_code == 400
    response = await login(client, "ada@example.com", "wrong password")
    assert response.status_code == 429
    assert "Too many attempts" in response.text and response.headers["retry-after"]


async def test_open_redirect_is_refused(client):
    await signup(client, "ada@example.com")
    await client.post("/logout", data={"_csrf_token": await csrf_token(client, "/billing")})
    token = await csrf_token(client)
    response = await client.post(
        "/login",
        data={
            "email": "ada@example.com",
            "password": PASSWORD,
            "next": "//evil.example",
            "_csrf_token": token,
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/billing"


async def test_an_old_password_hash_is_upgraded_on_login(client, session):
    from passlib.hash import pbkdf2_sha256
    from sqlalchemy import select

    from app.accounts.models import User

    await signup(client, "ada@example.com")
    await client.post("/logout", data={"_csrf_token": await csrf_token(client, "/billing")})
    user = await session.scalar(select(User).where(User.email == "ada@example.com"))
    user.password_hash = pbkdf2_sha256.hash(PASSWORD)
    await session.commit()

    assert (await login(client, "ada@example.com", PASSWORD)).status_code == 303
    await session.refresh(user)
    assert user.password_hash.startswith("$argon2")


async def test_cookies_are_secure_behind_https(tmp_path, database_url, catalog, engine):
    from app.main import create_app
    from tests.support import make_settings

    app = create_app(
        make_settings(tmp_path / "var", database_url, public_url="https://billing.example.com"),
        catalog,
    )
    async with AsyncTestClient(app, base_url="https://billing.example.com") as secure:
        await signup(secure, "grace@example.com")
        response = await login(secure, "grace@example.com", PASSWORD)
        cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
        session_cookie = next(c for c in cookies if c.startswith("session="))
        assert "Secure" in session_cookie and "HttpOnly" in session_cookie
