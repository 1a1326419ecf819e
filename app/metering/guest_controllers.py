"""Guest conversion API: a guest's usage and credits carried over to a signed-up customer."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter
from msgspec import Meta, Struct

from app.apikeys.guards import ApiKeyAuthentication
from app.customers.schemas import MAX_EXTERNAL_ID, CustomerOut, customer_out
from app.metering.guests import GuestService
from app.web.api_request import ApiRequest, path_text
from app.web.errors import api_docs


class ConvertIn(Struct):
    """The signed-up customer's external id (created on the default plan when new)."""

    external_id: Annotated[str, Meta(min_length=1, max_length=MAX_EXTERNAL_ID)]


class ConversionOut(Struct):
    guest_external_id: str
    target_created: bool
    # Per meter: the usage and the credits carried over.
    usage: dict[str, int]
    credits: dict[str, int]
    customer: CustomerOut


class GuestApiController(Controller):
    path = "/api/v1/customers"
    middleware = [ApiKeyAuthentication]
    request_class = ApiRequest
    tags = ["customers"]
    security = [{"apiKey": []}]

    @post(
        "/{external_id:str}/convert",
        status_code=200,
        summary="Convert a guest into a signed-up customer, carrying its usage and credits",
        description=(
            "Exactly once: the guest's usage of the current period counts against the target's "
            "quota and its unexpired credits become the target's. The target is created on the "
            "default plan when no customer has that external_id. Afterwards every write for the "
            "guest (and a second conversion) answers 409 `guest_converted`, naming the target."
        ),
        **api_docs(404, 409, 422, 503),
    )
    async def convert(
        self,
        external_id: Annotated[str, PathParameter(max_length=MAX_EXTERNAL_ID)],
        data: JSONBody[ConvertIn],
        guest_service: NamedDependency[GuestService],
    ) -> ConversionOut:
        guest = path_text(external_id, "external_id")
        done = await guest_service.convert(guest, data.external_id)
        subscription = await guest_service.customers.subscription(done.target)
        return ConversionOut(
            guest_external_id=guest,
            target_created=done.target_created,
            usage=done.usage,
            credits=done.credits,
            customer=customer_out(done.target, subscription),
        )
