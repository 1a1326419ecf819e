"""Stripe's parameter strictness: unknown parameters and enum values Stripe does not know.

Each endpoint's parameters are declared in `param_table.py` as a small spec (see `Spec`);
`check()` walks a decoded request against it and raises Stripe's errors:

- an unknown key, at any depth: `400 parameter_unknown`, "Received unknown parameter: X",
  `param` X (`recurring[foo]`, `items[0][foo]`);
- a value outside an `Enum`: `400`, "Invalid X: must be one of a, b, or c", `param` the full
  path (Stripe names the last key in the message and sends no `code` for these).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.stripe_emulator.errors import StripeError, unknown_param


@dataclass(frozen=True)
class Enum:
    """A string parameter with a fixed set of values (as the pinned API version lists them)."""

    values: frozenset[str]

    def __init__(self, *values: str) -> None:
        object.__setattr__(self, "values", frozenset(values))


class _Scalar:
    def __repr__(self) -> str:
        return "ANY"


class _Map:
    def __repr__(self) -> str:
        return "MAP"


ANY = _Scalar()  # a scalar (string, number, boolean, id, timestamp)
MAP = _Map()  # free-form keys (metadata, meter event payload)

# A spec: ANY, MAP, an Enum, a dict of named fields (a hash; a `Range` also takes a single
# value), or a one-element list `[spec]` (an array whose elements follow `spec`).
Spec = Any


class Range(dict[str, Any]):
    """A filter given either as one value or as a hash of bounds (`created[gte]=...`)."""

    def __init__(self, *bounds: str) -> None:
        super().__init__(dict.fromkeys(bounds, ANY))


# What every list endpoint takes besides its filters.
LIST: dict[str, Spec] = {"limit": ANY, "starting_after": ANY, "ending_before": ANY}


def fields(*names: str, **nested: Spec) -> dict[str, Spec]:
    """`fields("a", "b", c=Enum(...), d=fields(...))`: a hash spec; bare names are scalars."""
    return {**dict.fromkeys(names, ANY), **nested}


def check(spec: dict[str, Spec], params: dict[str, Any]) -> None:
    """Raise Stripe's error for the first parameter `spec` does not allow; `expand` is always
    allowed, as on every Stripe endpoint."""
    _check_hash({"expand": [ANY], **spec}, params, "")


def _path(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def _check_hash(spec: dict[str, Spec], value: dict[str, Any], prefix: str) -> None:
    for key, child in value.items():
        path = _path(prefix, key)
        if key not in spec:
            raise unknown_param(path)
        _check(spec[key], child, path, key)


def _check(spec: Spec, value: Any, path: str, name: str) -> None:
    if spec is ANY or spec is MAP or value == "":
        return  # "" unsets a value or a hash, wherever Stripe allows it
    if isinstance(spec, Enum):
        if value not in spec.values:
            raise StripeError(
                400, f"Invalid {name}: must be one of {_one_of(spec.values)}", param=path
            )
        return
    if isinstance(spec, list):
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            _check(spec[0], item, f"{path}[{index}]", name)
        return
    if isinstance(spec, dict):
        if isinstance(spec, Range) and not isinstance(value, dict):
            return
        if not isinstance(value, dict):
            raise StripeError(400, "Invalid hash", param=path)
        _check_hash(spec, value, path)


def _one_of(values: frozenset[str]) -> str:
    ordered = sorted(values)
    if len(ordered) <= 2:
        return " or ".join(ordered)
    return ", ".join(ordered[:-1]) + ", or " + ordered[-1]
