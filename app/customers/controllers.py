"""Customer API (Lago's wire format): upsert and read by external_id."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from app.apikeys.guards import ApiKeyAuthentication
from app.customers.schemas import MAX_EXTERNAL_ID, CustomerEnvelope, CustomerResponse, customer_out
from app.customers.service import CustomerInput, CustomerService
from app.lib.errors import ValidationFailed
from app.web.api_request import ApiRequest, path_text
from app.web.errors import api_docs


class CustomerApiController(Controller):
    path = "/api/v1/customers"
    middleware = [ApiKeyAuthentication]
    request_class = ApiRequest  # no htmx headers; bodies checked once (app.web.api_request)
    tags = ["customers"]
    security = [{"apiKey": []}]

    @post(
        "/",
        status_code=200,
        summary="Create or update a customer by external_id",
        **api_docs(409, 422, 503),
    )
    async def upsert(
        self, data: JSONBody[CustomerEnvelope], customer_service: NamedDependency[CustomerService]
    ) -> CustomerResponse:
        body = data.customer
        external_id = (body.external_id or "").strip()
        if not external_id or len(external_id) > 255:
            raise ValidationFailed("external_id must be 1 to 255 characters.", field="external_id")
        customer, subscription = await customer_service.upsert(
            CustomerInput(external_id=external_id, email=body.email, name=body.name, plan=body.plan)
        )
        return CustomerResponse(customer_out(customer, subscription))

    @get(
        "/{external_id:str}",
        summary="A customer by external_id",
        **api_docs(404),
    )
    async def read(
        self,
        external_id: Annotated[str, PathParameter(max_length=MAX_EXTERNAL_ID)],
        customer_service: NamedDependency[CustomerService],
    ) -> CustomerResponse:
        customer = await customer_service.get(path_text(external_id, "external_id"))
        subscription = await customer_service.subscription(customer)
        return CustomerResponse(customer_out(customer, subscription))
