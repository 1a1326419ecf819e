"""The public plans API: no key, cacheable (`Cache-Control: public`, an ETag and `304`)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, MediaType, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter

from app.catalog.models import Catalog
from app.catalog.schemas import PlansOut, plans_document
from app.web.api_request import ApiRequest
from app.web.errors import api_docs

# How long a browser or CDN may reuse the answer without asking again (seconds). After a
# catalog change and restart, pages see the new plans within this time (or at once, with
# If-None-Match: the tag changes with the content).
PLANS_MAX_AGE = 300


class PlansApiController(Controller):
    path = "/api/v1/plans"
    request_class = ApiRequest
    tags = ["plans"]
    opt = {"public": True}

    @get(
        "/",
        summary="The public plans: prices, quotas, features and trial days (no API key)",
        **api_docs(
            ok={
                200: ResponseSpec(PlansOut, description="The plans", generate_examples=False),
                304: ResponseSpec(
                    None, description="Not modified: the If-None-Match tag is current"
                ),
            },
            public=True,
        ),
    )
    async def plans(
        self,
        catalog: NamedDependency[Catalog],
        if_none_match: Annotated[
            str | None,
            HeaderParameter(name="If-None-Match", description="An ETag of an earlier answer"),
        ] = None,
    ) -> Response[bytes]:
        document = plans_document(catalog)
        headers = {
            "ETag": document.etag,
            "Cache-Control": f"public, max-age={PLANS_MAX_AGE}",
            # A SaaS's pricing page may fetch it from the browser, on its own origin.
            "Access-Control-Allow-Origin": "*",
        }
        if document.matches(if_none_match):
            return Response(b"", status_code=304, headers=headers)
        return Response(document.body, media_type=MediaType.JSON, headers=headers)
