from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from msgspec import Meta, Struct

from app.customers.models import Customer, Subscription

# Column lengths (app/customers/models.py). The email's own rule (app.lib.emails, 254
# characters once trimmed) is the service's; a NUL anywhere is refused where the body is
# decoded (app.web.api_request).
MAX_EXTERNAL_ID = 255
MAX_NAME = 255
MAX_PLAN = 64


class CustomerIn(Struct):
    external_id: Annotated[str, Meta(min_length=1, max_length=MAX_EXTERNAL_ID)]
    email: str | None = None
    name: Annotated[str, Meta(max_length=MAX_NAME)] | None = None
    plan: Annotated[str, Meta(min_length=1, max_length=MAX_PLAN)] | None = None


class CustomerEnvelope(Struct):
    customer: CustomerIn


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


class SubscriptionOut(Struct):
    external_id: str
    plan_code: str
    status: str
    current_period_start: str | None
    current_period_end: str | None


class CustomerOut(Struct):
    """A customer in Lago's shape, with its subscription (every customer has one)."""

    lago_id: str
    external_id: str
    email: str | None
    name: str | None
    currency: str
    created_at: str | None
    updated_at: str | None
    applicable_timezone: str
    timezone: str
    metadata: list[Any]
    plan: str
    subscription: SubscriptionOut


class CustomerResponse(Struct):
    customer: CustomerOut


def customer_out(customer: Customer, subscription: Subscription) -> CustomerOut:
    return CustomerOut(
        lago_id=customer.public_id,
        external_id=customer.external_id,
        email=customer.email,
        name=customer.name,
        currency=customer.currency.upper(),
        created_at=_iso(customer.created_at),
        updated_at=_iso(customer.updated_at),
        applicable_timezone="UTC",
        timezone="UTC",
        metadata=[],
        plan=subscription.plan_slug,
        subscription=SubscriptionOut(
            external_id=subscription.external_id,
            plan_code=subscription.plan_slug,
            status=subscription.status,
            current_period_start=_iso(subscription.current_period_start),
            current_period_end=_iso(subscription.current_period_end),
        ),
    )
