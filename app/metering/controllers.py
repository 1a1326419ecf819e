"""The server API for usage: events, balances, checks, reservations and credits."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, QueryParameter
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Receive, Scope, Send

from app.apikeys.guards import ApiKeyAuthentication
from app.lib.errors import DomainError, ValidationFailed
from app.metering.arrivals import ARRIVALS
from app.metering.entitlements import refusal
from app.metering.schemas import (
    MAX_BATCH_EVENTS,
    BalancesOut,
    BatchResponse,
    CheckIn,
    CheckResponse,
    CommitIn,
    CreditGrantResponse,
    CreditsIn,
    EntitlementsOut,
    EventBatch,
    EventEnvelope,
    EventIn,
    EventResponse,
    ExternalIdPath,
    FeatureCheckResponse,
    ReservationEnvelope,
    ReservationIdPath,
    ReservationResponse,
    balance_out,
    balances_json,
    encode_json,
    entitlements_json,
    event_out,
    feature_check_out,
    grant_out,
    parse_timestamp,
    reservation_out,
)
from app.metering.service import EventInput, UsageApi
from app.web.api_request import ApiRequest, path_text
from app.web.errors import api_docs
from app.web.fast_paths import json_response


def _event_input(data: EventIn) -> EventInput:
    return EventInput(
        transaction_id=data.transaction_id or "",
        code=data.code or "",
        external_customer_id=data.external_customer_id,
        external_subscription_id=data.external_subscription_id,
        timestamp=parse_timestamp(data.timestamp),
        properties=data.properties,
    )


class ExpectsUsageWrite:
    """On the handlers that write through the usage writer: counts the request as on its way
    to the writer's queue from here until it gets there or ends (app.metering.arrivals)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ticket = ARRIVALS.expect()
        try:
            await self.app(scope, receive, send)
        finally:
            ARRIVALS.done(ticket)


_WRITES = [ExpectsUsageWrite]


def _documented(
    body: type[Any], description: str = "Request fulfilled, document follows"
) -> ResponseSpec:
    """A success body the handler's annotation does not say (`json_response`, or a second
    status); ResponseSpec invents random example values unless told not to."""
    return ResponseSpec(body, description=description, generate_examples=False)


_REPLAYED_HOLD = _documented(
    ReservationResponse, "A retry with the same transaction_id: the hold it made"
)


def _error(exc: DomainError) -> dict[str, Any]:
    return {"error": exc.code, "message": exc.message, "status_code": exc.status_code, **exc.extra}


class UsageApiController(Controller):
    path = "/api/v1"
    middleware = [ApiKeyAuthentication]
    request_class = ApiRequest  # no htmx headers; bodies checked once (app.web.api_request)
    tags = ["usage"]
    security = [{"apiKey": []}]

    @post(
        "/events",
        status_code=200,
        summary="Record a usage event (idempotent per transaction_id)",
        middleware=_WRITES,
        **api_docs(402, 404, 409, 422, 503, ok={200: _documented(EventResponse)}),
    )
    async def create_event(
        self, data: JSONBody[EventEnvelope], usage: NamedDependency[UsageApi]
    ) -> ASGIResponse:
        result = await usage.record(_event_input(data.event))
        return json_response(encode_json(EventResponse(event_out(result))))

    @post(
        "/events/batch",
        status_code=200,
        summary="Record up to 100 events; an outcome per event",
        middleware=_WRITES,
        **api_docs(422, 503, ok={200: _documented(BatchResponse)}),
    )
    async def create_events(
        self, data: JSONBody[EventBatch], usage: NamedDependency[UsageApi]
    ) -> ASGIResponse:
        if not data.events:
            raise ValidationFailed("events must not be empty.", field="events")
        if len(data.events) > MAX_BATCH_EVENTS:
            raise ValidationFailed(f"At most {MAX_BATCH_EVENTS} events per batch.", field="events")
        inputs: list[EventInput | DomainError] = []
        for item in data.events:
            try:
                inputs.append(_event_input(item))
            except DomainError as exc:
                inputs.append(exc)
        events: list[dict[str, Any]] = []
        accepted = 0
        for raw, outcome in zip(data.events, await usage.record_many(inputs), strict=True):
            if isinstance(outcome, DomainError):
                events.append(
                    {"transaction_id": raw.transaction_id, "status": "rejected", **_error(outcome)}
                )
            else:
                accepted += 1
                events.append(
                    {
                        "transaction_id": raw.transaction_id,
                        "status": "accepted",
                        "event": event_out(outcome),
                    }
                )
        return json_response(encode_json(BatchResponse(events, accepted, len(events) - accepted)))

    @get(
        "/customers/{external_id:str}/balances",
        summary="Balances of every meter",
        **api_docs(404, ok={200: _documented(BalancesOut)}),
    )
    async def balances(
        self, external_id: ExternalIdPath, usage: NamedDependency[UsageApi]
    ) -> ASGIResponse:
        return json_response(
            balances_json(await usage.balances(path_text(external_id, "external_id")))
        )

    @get(
        "/customers/{external_id:str}/entitlements",
        summary="Features of the plan in force and the balances of every meter",
        **api_docs(404, ok={200: _documented(EntitlementsOut)}),
    )
    async def entitlements(
        self, external_id: ExternalIdPath, usage: NamedDependency[UsageApi]
    ) -> ASGIResponse:
        sheet, plan = await usage.entitlements(path_text(external_id, "external_id"))
        return json_response(entitlements_json(sheet, plan, usage.catalog))

    @post(
        "/customers/{external_id:str}/check",
        status_code=200,
        summary="Would this amount be allowed, or does the plan include this feature? "
        "(consumes nothing; ?enforce=true answers a refusal as 402 or 403)",
        **api_docs(402, 403, 404, 422),
    )
    async def check(
        self,
        external_id: ExternalIdPath,
        data: JSONBody[CheckIn],
        usage: NamedDependency[UsageApi],
        enforce: Annotated[
            bool,
            QueryParameter(
                description="Answer a refusal as the error a usage write would get: `402 "
                "insufficient_balance` for a meter, `403 feature_not_in_plan` for a feature."
            ),
        ] = False,
    ) -> CheckResponse | FeatureCheckResponse:
        customer = path_text(external_id, "external_id")
        if (data.code is None) == (data.feature is None):
            raise ValidationFailed(
                "Send either code (a meter, with amount) or feature.",
                field="code" if data.code is None else "feature",
            )
        if data.feature is not None:
            decision = await usage.check_feature(customer, data.feature)
            if enforce and not decision.allowed:
                raise refusal(decision, usage.upgrade_url)
            return feature_check_out(decision, usage.upgrade_url)
        assert data.code is not None
        allowed, balance = await usage.check(customer, data.code, data.amount)
        if enforce and not allowed:
            raise usage.insufficient(balance, data.amount)
        return CheckResponse(allowed, data.amount, balance_out(balance))

    @post(
        "/reservations",
        status_code=201,
        summary="Hold balance for expensive work",
        middleware=_WRITES,
        **api_docs(402, 404, 409, 422, 503, ok={200: _REPLAYED_HOLD}),
    )
    async def reserve(
        self,
        data: JSONBody[ReservationEnvelope],
        usage: NamedDependency[UsageApi],
    ) -> Response[ReservationResponse]:
        body = data.reservation
        result = await usage.reserve(
            body.external_customer_id, body.code, body.amount, body.transaction_id, body.ttl_seconds
        )
        status = 200 if result.replayed else 201
        return Response(ReservationResponse(reservation_out(result)), status_code=status)

    @post(
        "/reservations/{reservation_id:str}/commit",
        status_code=200,
        summary="Turn a hold into usage",
        middleware=_WRITES,
        **api_docs(402, 404, 409, 422, 503, optional_body=True),
    )
    async def commit(
        self,
        reservation_id: ReservationIdPath,
        usage: NamedDependency[UsageApi],
        data: JSONBody[CommitIn | None] = None,
    ) -> ReservationResponse:
        result = await usage.commit(
            path_text(reservation_id, "reservation_id"), data.amount if data else None
        )
        return ReservationResponse(reservation_out(result))

    @post(
        "/reservations/{reservation_id:str}/release",
        status_code=200,
        summary="Give a hold back",
        middleware=_WRITES,
        **api_docs(404, 409, 503),
    )
    async def release(
        self, reservation_id: ReservationIdPath, usage: NamedDependency[UsageApi]
    ) -> ReservationResponse:
        result = await usage.release(path_text(reservation_id, "reservation_id"))
        return ReservationResponse(reservation_out(result))

    @post(
        "/customers/{external_id:str}/credits",
        status_code=200,
        summary="Grant credits (idempotent)",
        middleware=_WRITES,
        **api_docs(404, 409, 422, 503),
    )
    async def grant_credits(
        self,
        external_id: ExternalIdPath,
        data: JSONBody[CreditsIn],
        usage: NamedDependency[UsageApi],
    ) -> CreditGrantResponse:
        result = await usage.grant_credits(
            path_text(external_id, "external_id"),
            data.code,
            data.amount,
            data.reason,
            data.transaction_id,
            data.expires_at,
        )
        return CreditGrantResponse(grant_out(result))
