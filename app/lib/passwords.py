"""Password hashing with argon2 through passlib; older schemes are verified and upgraded."""

from __future__ import annotations

from passlib.context import CryptContext

_context = CryptContext(schemes=["argon2", "pbkdf2_sha256"], deprecated="auto")

# Verifying against this when the account is unknown costs the same as a real check,
# so response time does not reveal which emails exist.
_DUMMY_HASH = _context.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return str(_context.hash(password))


def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """Return (valid, new_hash); new_hash is set when the stored hash should be upgraded."""
    if password_hash is None:
        _context.verify(password, _DUMMY_HASH)
        return False, None
    try:
        valid, new_hash = _context.verify_and_update(password, password_hash)
        return bool(valid), new_hash
    except (ValueError, TypeError):
        return False, None
