"""Short signed values: `value.mac`, the mac an HMAC-SHA256 of a purpose and the value under
the app's secret key, so a token made for one purpose is worth nothing for another."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _mac(secret: str, purpose: str, value: str) -> str:
    digest = hmac.new(secret.encode(), f"{purpose}\0{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(value: str, secret: str, purpose: str) -> str:
    return f"{value}.{_mac(secret, purpose, value)}"


def unsign(token: str | None, secret: str, purpose: str) -> str | None:
    """The value when `token` was signed for `purpose` with `secret`; None otherwise."""
    if not token or "." not in token or len(token) > 512:
        return None
    value, mac = token.rsplit(".", 1)
    if not value or not hmac.compare_digest(mac, _mac(secret, purpose, value)):
        return None
    return value
