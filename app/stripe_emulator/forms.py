"""Decode Stripe's bracket form encoding (`items[0][price]=x`, `expand[]=y`) into nested values."""

from __future__ import annotations

import re
from typing import Any, cast
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")

# Free-form maps whose numeric keys must stay keys, not become list indexes.
_MAP_KEYS = {"metadata", "payload"}


def decode_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        match = _KEY.match(raw_key)
        if not match:
            root[raw_key] = value
            continue
        path = [match.group(1), *_SEGMENT.findall(match.group(2))]
        node = root
        for index, segment in enumerate(path):
            key = segment if segment != "" else str(len(node))
            if index == len(path) - 1:
                node[key] = value
            else:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = {}
                    node[key] = child
                node = child
    return cast(dict[str, Any], _listify(root))


def decode(body: bytes | str) -> dict[str, Any]:
    text = body.decode() if isinstance(body, bytes) else body
    return decode_pairs(parse_qsl(text, keep_blank_values=True))


def _listify(node: Any, key: str | None = None) -> Any:
    if not isinstance(node, dict):
        return node
    if key in _MAP_KEYS:
        return {k: _listify(v) for k, v in node.items()}
    converted = {k: _listify(v, k) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted
