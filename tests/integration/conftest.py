"""Integration-only fixtures (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.lib.passwords import argon2_cost


@pytest.fixture(scope="package", autouse=True)
def _cheap_password_hashing() -> Iterator[None]:
    """argon2 at its cheapest while tests/integration runs: production's parameters cost ~0.1 s
    a hash, which the suite would pay at every signup and login. tests/unit/test_passwords.py
    (outside this package, so after the restore) holds production to the strong ones;
    processes the suite starts (CLI, serve) use those."""
    with argon2_cost(memory_cost=8, time_cost=1, parallelism=1):
        yield
