"""Error format: JSON `{"error", "message"}` under /api/ and /webhooks/, HTML pages elsewhere.

The real app (the `client` fixture) covers routing errors; a tiny app with the same exception
handlers, templates and guards covers what no real route raises yet (domain errors, 500s,
the admin guard).
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import get
from litestar.config.csrf import CSRFConfig
from litestar.params import FromQuery
from litestar.testing import TestClient, create_test_client
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import OperationalError

from app.accounts.auth import CurrentUser
from app.accounts.guards import requires_admin, requires_user
from app.db.engine import is_busy
from app.lib.errors import InsufficientBalance
from app.web.errors import exception_handlers
from app.web.templating import template_config
from tests.conftest import csrf_token
from tests.factories import log_in_new_user
from tests.support import make_settings

# --- the real app -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/", "/webhooks/nowhere"])
async def test_unknown_api_path_is_a_json_404(client, path):
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "not_found"
    assert isinstance(body["message"], str) and body["message"]


@pytest.mark.parametrize("path", ["/no-such-page", "/apiary", "/billing/no-such-tab"])
async def test_unknown_page_is_an_html_404(client, path):
    # Logged in: an unknown path under a guarded prefix is a 404 too, not a login redirect,
    # with the logged-in navigation (a catch-all route: app/web/site_files.py).
    await log_in_new_user(client)
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-testid="error-404"' in response.text


async def test_unknown_page_is_an_html_404_when_logged_out(client):
    response = await client.get("/no-such-page", follow_redirects=False)
    assert response.status_code == 404
    assert 'data-testid="error-404"' in response.text


async def test_wrong_method_on_a_page_is_an_html_405(client):
    response = await client.delete("/login")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-testid="error-405"' in response.text


async def test_post_without_csrf_token_gets_the_403_page(client):
    await client.get("/login")
    response = await client.post("/login", data={"email": "a@b.co", "password": "whatever"})
    assert response.status_code == 403
    assert 'data-testid="error-403"' in response.text


async def test_a_guarded_page_sends_the_browser_to_log_in(client):
    response = await client.get("/billing", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/billing"


async def test_invalid_form_input_is_a_4xx_never_a_500(client):
    token = await csrf_token(client, "/signup")
    response = await client.post(
        "/signup",
        content=b"\xff\xfe=%%%",
        headers={"content-type": "application/x-www-form-urlencoded", "x-csrftoken": token},
    )
    assert 400 <= response.status_code < 500


# --- a tiny app with the same handlers --------------------------------------------------------


def fake_login(app: ASGIApp) -> ASGIApp:
    """Sets scope["user"] from an `x-test-user: admin|user` header, as SessionAuth would."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        who = dict(scope.get("headers", [])).get(b"x-test-user")
        if who:
            scope["user"] = CurrentUser(
                id=1, email=f"{who.decode()}@example.com", name="", is_admin=who == b"admin"
            )
        await app(scope, receive, send)

    return middleware


@get("/api/v1/admin-thing", guards=[requires_admin])
async def api_admin_thing() -> dict[str, str]:
    return {"ok": "yes"}


@get("/admin/thing", guards=[requires_admin])
async def admin_page() -> str:
    return "admin page"


@get("/account/thing", guards=[requires_user])
async def user_page() -> str:
    return "user page"


@get("/api/v1/quota")
async def api_quota() -> None:
    raise InsufficientBalance(
        "Not enough ai_requests left.",
        meter="ai_requests",
        available=0,
        required=1,
        upgrade_url="/billing/upgrade",
    )


@get("/api/v1/items")
async def api_items(limit: FromQuery[int]) -> dict[str, int]:
    return {"limit": limit}


@get("/api/v1/boom")
async def api_boom() -> None:
    raise RuntimeError("database password is hunter2")


@get("/boom")
async def page_boom() -> None:
    raise RuntimeError("database password is hunter2")


def _real_busy_error() -> OperationalError:
    """What SQLAlchemy raises when SQLite's write lock is taken and the wait is over."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "busy.db"
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("PRAGMA journal_mode=WAL")
        holder.execute("CREATE TABLE t (x INTEGER)")
        holder.execute("BEGIN IMMEDIATE")
        engine = create_sync_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        except OperationalError as exc:
            return exc
        finally:
            engine.dispose()
            holder.close()
    raise AssertionError("the insert should have found the database locked")


BUSY = _real_busy_error()


@get("/api/v1/busy")
async def api_busy() -> None:
    raise BUSY


@get("/busy")
async def page_busy() -> None:
    raise BUSY


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    var_dir: Path = tmp_path_factory.mktemp("tiny")
    settings = make_settings(var_dir, f"sqlite+aiosqlite:///{var_dir / 'unused.db'}")
    with create_test_client(
        route_handlers=[
            api_admin_thing,
            admin_page,
            user_page,
            api_quota,
            api_items,
            api_boom,
            page_boom,
            api_busy,
            page_busy,
        ],
        middleware=[fake_login],
        exception_handlers=exception_handlers(),
        template_config=template_config(settings),
        csrf_config=CSRFConfig(secret=settings.secret_key),
        debug=False,
        raise_server_exceptions=False,
        openapi_config=None,
    ) as client:
        yield client


@pytest.mark.parametrize(
    ("who", "status", "error"),
    [(None, 401, "unauthorized"), ("user", 403, "forbidden"), ("admin", 200, None)],
    ids=["anonymous", "user", "admin"],
)
def test_admin_guard_on_the_api(tiny, who, status, error):
    headers = {"x-test-user": who} if who else {}
    response = tiny.get("/api/v1/admin-thing", headers=headers)
    assert response.status_code == status
    if error:
        assert response.json()["error"] == error
        assert response.json()["message"]
    else:
        assert response.json() == {"ok": "yes"}


def test_admin_guard_on_pages(tiny):
    anonymous = tiny.get("/admin/thing", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/admin/thing"

    user = tiny.get("/admin/thing", headers={"x-test-user": "user"})
    assert user.status_code == 403
    assert 'data-testid="error-403"' in user.text
    assert "This page is for administrators." in user.text

    admin = tiny.get("/admin/thing", headers={"x-test-user": "admin"})
    assert admin.status_code == 200
    assert admin.text == "admin page"


def test_user_guard(tiny):
    assert tiny.get("/account/thing", follow_redirects=False).status_code == 303
    assert tiny.get("/account/thing", headers={"x-test-user": "user"}).text == "user page"


def test_domain_error_keeps_its_code_and_extra_fields(tiny):
    response = tiny.get("/api/v1/quota")
    assert response.status_code == 402
    assert response.json() == {
        "error": "insufficient_balance",
        "message": "Not enough ai_requests left.",
        "meter": "ai_requests",
        "available": 0,
        "required": 1,
        "upgrade_url": "/billing/upgrade",
    }


def test_invalid_query_parameter_is_a_422_naming_the_field(tiny):
    response = tiny.get("/api/v1/items", params={"limit": "many"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert "limit" in body["message"]
    assert body["field"] == "limit"
    assert any(field.get("key") == "limit" for field in body["fields"])


def test_unhandled_error_is_a_500_that_leaks_nothing(tiny):
    api = tiny.get("/api/v1/boom")
    assert api.status_code == 500
    assert api.json() == {
        "error": "internal_error",
        "message": "Something went wrong on our side.",
    }
    page = tiny.get("/boom")
    assert page.status_code == 500
    assert 'data-testid="error-500"' in page.text
    assert "hunter2" not in page.text and "Traceback" not in page.text


def test_a_locked_database_is_a_503_to_retry_not_a_500(tiny):
    assert is_busy(BUSY)
    response = tiny.get("/api/v1/busy")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "database_busy"
    assert "retry" in response.json()["message"]

    page = tiny.get("/busy")
    assert page.status_code == 503
    assert page.headers["retry-after"] == "1"
    assert "Nothing was saved" in page.text


def test_other_database_errors_stay_500s():
    assert not is_busy(RuntimeError("database is locked"))
    other = OperationalError("SELECT 1", {}, sqlite3.OperationalError("no such table: t"))
    assert not is_busy(other)
