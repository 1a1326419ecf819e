"""What a decoded JSON body may hold before it reaches a service or the database.

Two things PostgreSQL or Python cannot take, found once per body rather than per field:

- the NUL character (U+0000), which no PostgreSQL text or JSON value can hold. In JSON it can
  only be written as the escape `\\u0000` (a raw NUL byte is malformed JSON), so a body
  without that escape holds none: one search of the raw bytes, and the decoded value is
  walked only when the escape is there;
- nesting deeper than `MAX_DEPTH`: deep values exhaust Python's recursion limit in the
  decoder, or later when they are hashed, stored or encoded again. Depth needs as many
  brackets, so `too_deep` walks only a body with more than `MAX_DEPTH` of them.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 64
_NUL_ESCAPE = b"\\u0000"
_CONTAINERS = (dict, list)


def too_deep(raw: bytes, value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """Whether `value`, decoded from `raw`, nests more than `max_depth` levels."""
    return raw.count(b"{") + raw.count(b"[") > max_depth and deeper_than(value, max_depth)


def deeper_than(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """Whether `value` nests more than `max_depth` containers (itself included)."""
    return type(value) in _CONTAINERS and _deeper_than(value, max_depth)


def too_deep_message(max_depth: int = MAX_DEPTH) -> str:
    return f"The JSON body is nested more than {max_depth} levels deep."


def nul_field(raw: bytes, value: Any) -> str | None:
    """Where `value` holds a NUL, as a dotted path (`body` for the body itself), or None.
    Call after `too_deep`: the walk is recursive."""
    # A backslash first: one byte is found far faster than six, and most bodies have none.
    if b"\\" not in raw or _NUL_ESCAPE not in raw:
        return None
    path = _nul_at(value, "")
    return None if path is None else path or "body"


def _deeper_than(value: Any, room: int) -> bool:
    if room == 0:
        return True
    for inner in value.values() if type(value) is dict else value:
        if type(inner) in _CONTAINERS and _deeper_than(inner, room - 1):
            return True
    return False


def _nul_at(value: Any, path: str) -> str | None:
    """The path of the first string (or object key) holding a NUL; depth already bounded."""
    if type(value) is str:
        return path if "\x00" in value else None
    if type(value) is dict:
        for key, inner in value.items():
            at = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return at.replace("\x00", "\\u0000")
            found = _nul_at(inner, at)
            if found is not None:
                return found
    elif type(value) is list:
        for index, inner in enumerate(value):
            found = _nul_at(inner, f"{path}[{index}]")
            if found is not None:
                return found
    return None
