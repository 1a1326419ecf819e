"""Password hashing with argon2 through passlib; older schemes are verified and upgraded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from passlib.context import CryptContext

_SCHEMES = ["argon2", "pbkdf2_sha256"]
# For the test suite's own processes only (tests/servers.py and the CLI tests start
# `billing-portal` with it set to 1): argon2 at the cheapest parameters, as `argon2_cost` gives
# the in-process tests. Never set it in production; hashes made under it are upgraded to the
# production parameters at the next login once it is unset.
CHEAP_HASHING_ENV = "INSECURE_TEST_PASSWORD_HASHING"
CHEAP_ARGON2: dict[str, int] = {"memory_cost": 8, "time_cost": 1, "parallelism": 1}


def _context(**argon2: int) -> CryptContext:
    """passlib's argon2 defaults (argon2id, 64 MiB, 3 passes, 4 lanes) unless overridden."""
    names = {"memory_cost": "memory_cost", "time_cost": "rounds", "parallelism": "parallelism"}
    params: dict[str, Any] = {f"argon2__{names[k]}": v for k, v in argon2.items()}
    return CryptContext(schemes=_SCHEMES, deprecated="auto", **params)


class _Hasher:
    """A hashing context and its dummy hash. Verifying against the dummy when the account is
    unknown costs the same as a real check, so response time does not reveal which emails
    exist."""

    def __init__(self, context: CryptContext) -> None:
        self.context = context
        self.dummy_hash = str(context.hash("not-a-real-password"))


# Production: passlib's argon2 defaults; the test suite's processes: CHEAP_ARGON2.
_hasher = _Hasher(
    _context(**CHEAP_ARGON2) if os.environ.get(CHEAP_HASHING_ENV) == "1" else _context()
)


def hash_password(password: str) -> str:
    return str(_hasher.context.hash(password))


def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """Return (valid, new_hash); new_hash is set when the stored hash should be upgraded."""
    context = _hasher.context
    if password_hash is None:
        context.verify(password, _hasher.dummy_hash)
        return False, None
    try:
        valid, new_hash = context.verify_and_update(password, password_hash)
        return bool(valid), new_hash
    except (ValueError, TypeError):
        return False, None


@contextmanager
def argon2_cost(*, memory_cost: int, time_cost: int, parallelism: int) -> Iterator[None]:
    """For test suites only: hash with these argon2 parameters inside the block, then return
    to the production ones. Hashes made inside still verify outside (argon2 hashes carry their
    parameters), where a login upgrades them like any hash of outdated strength."""
    global _hasher
    previous = _hasher
    _hasher = _Hasher(
        _context(memory_cost=memory_cost, time_cost=time_cost, parallelism=parallelism)
    )
    try:
        yield
    finally:
        _hasher = previous
