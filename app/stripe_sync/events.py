"""A webhook body, once its signature holds: an event the ledger can store, or MalformedEvent.

A signed body is still checked: the ledger row takes the id, type, created and the object's
id from it, and keeps the whole body as JSON, so a body that is not an object, whose fields
have the wrong types or do not fit their columns, that nests too deeply or holds a NUL
character (PostgreSQL stores neither) is refused before anything is written.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from app.lib.json_limits import nul_field, too_deep, too_deep_message

MAX_BIGINT = 2**63 - 1


class MalformedEvent(Exception):
    """A signed webhook body that is not an event the ledger can keep (400, or 413 when it
    nests too deeply)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


class _EventData(Struct):
    object: dict[str, Any]


class _Event(Struct):
    """The fields the ledger reads, at their column sizes (app/stripe_sync/models.py)."""

    id: Annotated[str, Meta(min_length=1, max_length=255)]
    type: Annotated[str, Meta(min_length=1, max_length=100)]
    created: Annotated[int, Meta(ge=0, le=MAX_BIGINT)]
    data: _EventData
    api_version: Annotated[str, Meta(max_length=64)] | None = None
    livemode: bool = False


def parse_event(payload: bytes) -> dict[str, Any]:
    """The event as JSON, checked; raises MalformedEvent."""
    try:
        event = msgspec.json.decode(payload)
    except RecursionError:
        raise MalformedEvent(too_deep_message(), status_code=413) from None
    except msgspec.DecodeError as exc:
        raise MalformedEvent(f"The body is not JSON: {exc}") from None
    if too_deep(payload, event):
        raise MalformedEvent(too_deep_message(), status_code=413)
    if (field := nul_field(payload, event)) is not None:
        raise MalformedEvent(f"{field} contains the NUL character (U+0000).")
    if not isinstance(event, dict):
        raise MalformedEvent("The body is not an event object.")
    try:
        msgspec.convert(event, _Event)
    except msgspec.ValidationError as exc:
        raise MalformedEvent(f"The body is not an event: {exc}") from None
    return event
