"""`field_path`: the dotted field a msgspec validation error is about (app/web/errors.py)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from app.customers.schemas import CustomerEnvelope
from app.metering.schemas import CreditsIn, EventBatch, EventEnvelope, ReservationEnvelope
from app.web.errors import field_path


def msgspec_message(payload: Any, type_: type) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(payload, type_, strict=False)
    return str(caught.value)


@pytest.mark.parametrize(
    ("payload", "type_", "field"),
    [
        (
            {"reservation": {"external_customer_id": "c", "code": "c", "transaction_id": "t"}},
            ReservationEnvelope,
            "reservation.amount",
        ),
        ({"code": "c", "amount": 1}, CreditsIn, "transaction_id"),
        ({"event": {"transaction_id": 5}}, EventEnvelope, "event.transaction_id"),
        ({"event": {"properties": [1]}}, EventEnvelope, "event.properties"),
        ({"events": [{}, {}, {}, 3]}, EventBatch, "events[3]"),
        ({"events": [{}, {"properties": "x"}]}, EventBatch, "events[1].properties"),
        ({"customer": {"name": "Ada"}}, CustomerEnvelope, "customer.external_id"),
        ([], EventEnvelope, "body"),
        ({}, EventEnvelope, "event"),
    ],
)
def test_from_msgspec_messages(payload: Any, type_: type, field: str) -> None:
    message = msgspec_message(payload, type_)
    assert field_path(message) == field, message


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("Object missing required field `amount` - at `$.reservation`", "reservation.amount"),
        ("Expected `str`, got `int` - at `$.event.transaction_id`", "event.transaction_id"),
        ("Expected `object`, got `int` - at `$.events[3]`", "events[3]"),
        ("Object missing required field `code` - at `$.events[0]`", "events[0].code"),
        ("Object contains unknown field `extra` - at `$.reservation`", "reservation.extra"),
        ("Object missing required field `transaction_id`", "transaction_id"),
        ("Expected `object`, got `array`", "body"),
        ("Expected `int`, got `str` - at `$`", "body"),
    ],
)
def test_from_message_strings(message: str, field: str) -> None:
    assert field_path(message) == field


@pytest.mark.parametrize(
    ("message", "key", "field"),
    [
        # Litestar's ValidationException.extra: the message without its tail, the path as key
        # (`data` being the handler's name for the whole body).
        ("Object missing required field `amount`", "reservation", "reservation.amount"),
        ("Object missing required field `transaction_id`", "data", "transaction_id"),
        ("Expected `str | null`, got `int`", "event.transaction_id", "event.transaction_id"),
        ("Expected `object`, got `int`", "events[3]", "events[3]"),
        ("Expected `object | null`, got `array`", "data", "body"),
        ("Expected `int`, got `str`", "limit", "limit"),
        ("Invalid input", None, "body"),
    ],
)
def test_from_litestar_extra(message: str, key: str | None, field: str) -> None:
    assert field_path(message, key) == field
