"""The API's ready-made JSON answers (`json_response`): what goes on the wire."""

from __future__ import annotations

import asyncio
from typing import Any

from app.web.fast_paths import json_response


def _sent(status_code: int = 200) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        messages.append(message)

    async def receive() -> Any:
        raise AssertionError("a response reads nothing")

    response = json_response(b'{"ok":true}', status_code)
    asyncio.run(response({"type": "http"}, receive, send))  # type: ignore[arg-type]
    return messages


def test_sends_the_body_as_given_with_its_type_and_length() -> None:
    start, body = _sent()
    assert start["type"] == "http.response.start"
    assert start["status"] == 200
    assert dict(start["headers"]) == {
        b"content-type": b"application/json",
        b"content-length": b"11",
    }
    assert body == {"type": "http.response.body", "body": b'{"ok":true}', "more_body": False}


def test_keeps_the_status_it_was_given() -> None:
    assert _sent(201)[0]["status"] == 201
