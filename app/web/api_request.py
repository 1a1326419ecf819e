"""The request class of the JSON API: Litestar's plain `Request` whose JSON body is checked
once, where it is decoded, for what no handler could store (app.lib.json_limits).

Every API handler's body (`JSONBody[...]`) is read through `Request.json()`, so this is the
one place that sees each body before its fields are converted: a body nested too deeply for
the decoder (msgspec raises RecursionError at about a thousand levels) or holding a NUL
character becomes a 422 naming the field, on every endpoint at once. (Every field of every
body is typed except an event's `properties`, so nesting below the decoder's limit can only
reach a service there: `MeteringService.event_op` bounds it.)"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.serialization import decode_json
from litestar.types import Empty

from app.lib.errors import ValidationFailed
from app.lib.json_limits import nul_field, too_deep_message


class ApiRequest(Request[Any, Any, Any]):
    __slots__ = ()

    async def json(self) -> Any:
        if self._json is Empty:
            if (known := self._connection_state.json) is not Empty:
                self._json = known
                return known
            body = await self.body()
            try:
                value = decode_json(
                    body or b"null", type_decoders=self.route_handler.resolve_type_decoders()
                )
            except RecursionError:
                raise ValidationFailed(too_deep_message(), field="body") from None
            if (field := nul_field(body, value)) is not None:
                raise ValidationFailed(
                    f"{field} contains the NUL character (U+0000), which cannot be stored.",
                    field=field,
                )
            self._json = self._connection_state.json = value
        return self._json


def path_text(value: str, field: str) -> str:
    """A path parameter that can be looked up: a NUL (sent as `%00`) is no id anyone has, and
    PostgreSQL would refuse the query. Lengths are the parameter's type (`Meta`)."""
    if "\x00" in value:
        raise ValidationFailed(
            f"{field} contains the NUL character (U+0000), which no id holds.", field=field
        )
    return value
