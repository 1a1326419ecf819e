"""`/api/v1/customers/{external_id}/members`: the SaaS attaches its users to a customer's
organization (API key auth, as the other customer routes). A new address becomes a
password-less user, who logs in through portal links that name them (`?member=`)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, MediaType, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter
from msgspec import Meta, Struct

from app.apikeys.guards import ApiKeyAuthentication
from app.customers.models import MEMBER
from app.customers.schemas import MAX_EXTERNAL_ID
from app.organizations.repository import MemberRow
from app.organizations.service import OrganizationService
from app.web.api_request import ApiRequest, path_text
from app.web.errors import api_docs

ExternalIdPath = Annotated[str, PathParameter(max_length=MAX_EXTERNAL_ID)]
EmailPath = Annotated[str, PathParameter(max_length=254)]


class MemberIn(Struct):
    email: Annotated[str, Meta(min_length=1, max_length=254)]
    role: str = MEMBER
    name: Annotated[str, Meta(max_length=120)] | None = None


class MemberOut(Struct):
    email: str
    name: str
    role: str
    joined_at: str


class MemberResponse(Struct):
    member: MemberOut
    external_customer_id: str


class MembersResponse(Struct):
    members: list[MemberOut]
    external_customer_id: str


def member_out(row: MemberRow) -> MemberOut:
    joined = row.joined_at.isoformat().replace("+00:00", "Z")
    return MemberOut(email=row.email, name=row.name, role=row.role, joined_at=joined)


class MembersApiController(Controller):
    path = "/api/v1/customers/{external_id:str}/members"
    middleware = [ApiKeyAuthentication]
    request_class = ApiRequest
    tags = ["customers"]
    security = [{"apiKey": []}]

    @get(
        "/",
        summary="The members of a customer's organization (owners first)",
        media_type=MediaType.JSON,
        **api_docs(404),
    )
    async def list_members(
        self,
        external_id: ExternalIdPath,
        organization_service: NamedDependency[OrganizationService],
    ) -> MembersResponse:
        customer, rows = await organization_service.api_members(
            path_text(external_id, "external_id")
        )
        return MembersResponse([member_out(row) for row in rows], customer.external_id)

    @post(
        "/",
        summary="Attach a user (by email; created password-less when new) with a role "
        "(owner, billing_admin, member); an existing member's role changes",
        media_type=MediaType.JSON,
        **api_docs(404, 403, 409, 422, 503),
    )
    async def attach(
        self,
        external_id: ExternalIdPath,
        data: JSONBody[MemberIn],
        organization_service: NamedDependency[OrganizationService],
    ) -> Response[MemberResponse]:
        customer, row, created = await organization_service.attach(
            path_text(external_id, "external_id"), data.email, data.role, data.name
        )
        return Response(
            MemberResponse(member_out(row), customer.external_id),
            status_code=201 if created else 200,
        )

    @delete(
        "/{email:str}",
        summary="Remove a member (never the last owner: 409 last_owner); answers the member removed",
        status_code=200,
        media_type=MediaType.JSON,
        **api_docs(404, 409, 503),
    )
    async def detach(
        self,
        external_id: ExternalIdPath,
        email: EmailPath,
        organization_service: NamedDependency[OrganizationService],
    ) -> MemberResponse:
        customer, row = await organization_service.detach(
            path_text(external_id, "external_id"), path_text(email, "email")
        )
        return MemberResponse(member_out(row), customer.external_id)
