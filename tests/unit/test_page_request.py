"""The app's request class keeps Litestar's htmx details without their reference cycle."""

from __future__ import annotations

import gc
from typing import Any

from litestar.plugins.htmx import HTMXRequest

from app.web.fast_paths import PageRequest
from app.web.responses import wants_fragment


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/billing", "headers": headers, "state": {}}


def _garbage_after(request_class: type[HTMXRequest]) -> int:
    gc.collect()
    gc.disable()
    try:
        request = request_class(_scope([(b"hx-request", b"true")]))  # type: ignore[arg-type]
        assert request.htmx  # an htmx request, read once
        del request
        return gc.collect()
    finally:
        gc.enable()


def test_a_page_request_leaves_no_cyclic_garbage() -> None:
    assert _garbage_after(HTMXRequest) > 0  # what the library's class leaves (the reason)
    assert _garbage_after(PageRequest) == 0


def test_the_htmx_details_read_as_before() -> None:
    partial = PageRequest(_scope([(b"hx-request", b"true")]))  # type: ignore[arg-type]
    assert partial.htmx and wants_fragment(partial)
    boosted = PageRequest(_scope([(b"hx-request", b"true"), (b"hx-boosted", b"true")]))  # type: ignore[arg-type]
    assert boosted.htmx.boosted and not wants_fragment(boosted)
    plain = PageRequest(_scope([]))  # type: ignore[arg-type]
    assert not plain.htmx and not wants_fragment(plain)
