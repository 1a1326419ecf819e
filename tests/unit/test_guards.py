"""The guards and the login redirect target, without a server."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import pytest
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from app.accounts.auth import CurrentUser
from app.accounts.controllers import safe_next
from app.accounts.guards import current_user, requires_admin, requires_user
from app.customers.models import MEMBER, OWNER
from app.organizations.guards import requires_role

ADMIN = CurrentUser(id=1, email="admin@example.com", name="", is_admin=True)
USER = CurrentUser(id=2, email="user@example.com", name="", is_admin=False)


def connection(user: Any) -> Any:
    scope: dict[str, Any] = {} if user is None else {"user": user}
    return SimpleNamespace(scope=scope)


async def test_anonymous_is_refused_with_401_by_both_guards():
    with pytest.raises(NotAuthorizedException):
        await requires_user(connection(None), None)  # type: ignore[arg-type]
    with pytest.raises(NotAuthorizedException):
        await requires_admin(connection(None), None)  # type: ignore[arg-type]


async def test_a_user_passes_requires_user_but_gets_403_from_requires_admin():
    await requires_user(connection(USER), None)  # type: ignore[arg-type]
    with pytest.raises(PermissionDeniedException, match="administrators"):
        await requires_admin(connection(USER), None)  # type: ignore[arg-type]


async def test_an_admin_passes_both():
    await requires_user(connection(ADMIN), None)  # type: ignore[arg-type]
    await requires_admin(connection(ADMIN), None)  # type: ignore[arg-type]


async def test_guards_are_coroutines_so_no_worker_thread_runs_them():
    """Litestar runs a plain function guard in a worker thread: a thread hop per request."""
    for guard in (requires_user, requires_admin, requires_role(MEMBER), requires_role(OWNER)):
        assert inspect.iscoroutinefunction(guard), guard


async def test_only_a_current_user_counts_as_logged_in():
    # Whatever else ends up in scope["user"] (a dict, an API key) is not a login.
    fake = {"id": 1, "is_admin": True}
    assert current_user(connection(fake)) is None
    with pytest.raises(NotAuthorizedException):
        await requires_admin(connection(fake), None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/billing/invoices?page=2", "/billing/invoices?page=2"),
        ("", "/billing"),
        (None, "/billing"),
        ("//evil.example", "/billing"),
        ("https://evil.example/", "/billing"),
        ("/\\evil.example", "/billing"),
        ("billing", "/billing"),
    ],
)
def test_safe_next_only_allows_same_site_paths(target, expected):
    assert safe_next(target) == expected
