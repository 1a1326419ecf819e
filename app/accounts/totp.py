"""The rules of two-factor login, with no database: TOTP codes (RFC 6238 through pyotp),
recovery codes, the secret's encryption at rest and the enrolment QR code (segno, SVG).

- A code is 6 digits for a 30-second time step; the step before and after are accepted too
  (clocks drift), and a step is accepted only if it is later than the last one used, so a code
  seen over someone's shoulder cannot be replayed, not even within its own window.
- Recovery codes are 16 characters of a 32-letter alphabet (80 random bits), shown once,
  stored as SHA-256 hashes and used once. Typed with or without dashes, in any case.
- The TOTP secret is encrypted with Fernet under a key derived from SECRET_KEY (HKDF-SHA256
  with its own `info`), so a copy of the database alone does not give codes. Changing
  SECRET_KEY makes stored secrets unreadable: those users sign in with a recovery code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

STEP_SECONDS = 30
DIGITS = 6
# Steps accepted either side of now: one (30 s), for clocks that drift a little.
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
_RECOVERY_LENGTH = 16
_HKDF_INFO = b"billing-portal two-factor secret v1"


def new_secret() -> str:
    """A fresh base32 TOTP secret (160 bits, what authenticator apps expect)."""
    return pyotp.random_base32(32)


def time_step(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def normalize_code(code: str) -> str:
    return "".join((code or "").split()).replace("-", "").lower()


def looks_like_totp(code: str) -> bool:
    normalized = normalize_code(code)
    return len(normalized) == DIGITS and normalized.isdigit()


def matching_step(secret: str, code: str, now: datetime, last_used_step: int) -> int | None:
    """The time step `code` belongs to, when it is a current code not used before; else None."""
    if not looks_like_totp(code):
        return None
    code = normalize_code(code)
    current = time_step(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if step > last_used_step and hmac.compare_digest(code_at(secret, step), code):
            return step
    return None


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_svg(uri: str) -> str:
    """The QR code of `uri` as inline SVG: no script, no style attribute (the pages' CSP
    forbids both), drawn with `stroke` and sized by its `width`/`height`."""
    return segno.make(uri, error="m").svg_inline(
        scale=5, dark="#000", light="#fff", title="QR code for your authenticator app"
    )


def grouped(secret: str) -> str:
    """The secret in groups of four, easier to type into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


# Recovery codes -------------------------------------------------------------------------


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4)))
    return codes


def hash_recovery_code(code: str) -> str:
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()


# The secret at rest ---------------------------------------------------------------------


@dataclass(frozen=True)
class SecretBox:
    """Encrypts and decrypts TOTP secrets under a key derived from SECRET_KEY."""

    fernet: Fernet

    @classmethod
    def from_secret_key(cls, secret_key: str) -> SecretBox:
        return _box(secret_key)

    def seal(self, secret: str) -> str:
        return self.fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str | None:
        """The secret; None when it was sealed under another SECRET_KEY (or is damaged)."""
        try:
            return self.fernet.decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            return None


@lru_cache(maxsize=4)
def _box(secret_key: str) -> SecretBox:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret_key.encode()
    )
    return SecretBox(Fernet(base64.urlsafe_b64encode(key)))
