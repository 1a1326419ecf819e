"""Integration-only fixtures (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.lib.passwords import CHEAP_ARGON2, argon2_cost


@pytest.fixture(scope="package", autouse=True)
def _cheap_password_hashing() -> Iterator[None]:
    """argon2 at its cheapest while tests/integration runs: production's parameters cost ~0.1 s
    a hash, which the suite would pay at every signup and login. tests/unit/test_passwords.py
    (outside this package, so after the restore) holds production to the strong ones;
    the processes the suite starts (CLI, serve) get the same cheap ones through
    INSECURE_TEST_PASSWORD_HASHING (tests/servers.py)."""
    with argon2_cost(**CHEAP_ARGON2):
        yield
