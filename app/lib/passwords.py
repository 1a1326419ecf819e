"""Password hashing with argon2 through passlib; older schemes are verified and upgraded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from passlib.context import CryptContext

_SCHEMES = ["argon2", "pbkdf2_sha256"]


class _Hasher:
    """A hashing context and its dummy hash. Verifying against the dummy when the account is
    unknown costs the same as a real check, so response time does not reveal which emails
    exist."""

    def __init__(self, context: CryptContext) -> None:
        self.context = context
        self.dummy_hash = str(context.hash("not-a-real-password"))


# passlib's argon2 defaults (argon2id, 64 MiB, 3 passes, 4 lanes): what production uses.
_hasher = _Hasher(CryptContext(schemes=_SCHEMES, deprecated="auto"))


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
    params: dict[str, Any] = {
        "argon2__memory_cost": memory_cost,
        "argon2__rounds": time_cost,
        "argon2__parallelism": parallelism,
    }
    previous = _hasher
    _hasher = _Hasher(CryptContext(schemes=_SCHEMES, deprecated="auto", **params))
    try:
        yield
    finally:
        _hasher = previous
