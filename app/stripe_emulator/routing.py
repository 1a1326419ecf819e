"""A tiny router for Stripe-style paths (`/v1/customers/{id}`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.stripe_emulator.core import Emulator


@dataclass
class ApiRequest:
    method: str
    path: str
    params: dict[str, Any]
    args: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return self.args[name]


Handler = Callable[[Emulator, ApiRequest], dict[str, Any]]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    template: str = ""


ROUTES: list[Route] = []
# The emulator's own helpers under /_emulator/ (no API key, not Stripe's API).
HELPERS: list[Route] = []


def _register(table: list[Route], method: str, template: str) -> Callable[[Handler], Handler]:
    regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"

    def register(handler: Handler) -> Handler:
        table.append(Route(method, re.compile(regex), handler, template))
        return handler

    return register


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    return _register(ROUTES, method, template)


def helper(method: str, template: str) -> Callable[[Handler], Handler]:
    return _register(HELPERS, method, template)


def resolve(
    method: str, path: str, table: list[Route] | None = None
) -> tuple[Route, dict[str, str]] | None:
    for candidate in ROUTES if table is None else table:
        if candidate.method != method:
            continue
        match = candidate.pattern.match(path)
        if match:
            return candidate, match.groupdict()
    return None
