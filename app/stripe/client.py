"""The gateway's base: the SDK client, Stripe's errors as ours, and the helpers every call
uses (typed requests, idempotency keys)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

import stripe

from app.config import Settings
from app.lib.errors import DomainError

if TYPE_CHECKING:
    from stripe._base_address import BaseAddresses

WEBHOOK_TOLERANCE_SECONDS = 300
MAX_NETWORK_RETRIES = 2
API_VERSION: str = stripe.api_version

Json = dict[str, Any]
ProrationBehavior = Literal["always_invoice", "create_prorations", "none"]
PaymentBehavior = Literal[
    "allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"
]


class StripeGatewayError(DomainError):
    """Stripe refused or could not be reached. `message` is safe to show to the user."""

    status_code = 502
    code = "stripe_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        stripe_code: str | None = None,
        http_status: int | None = None,
        stripe_param: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.stripe_code = stripe_code
        self.http_status = http_status
        # The request parameter Stripe refused (`param`), e.g. a tax ID's `value`.
        self.stripe_param = stripe_param


class StripeCardError(StripeGatewayError):
    status_code = 402
    code = "card_error"


class StripeNotFound(StripeGatewayError):
    status_code = 404
    code = "stripe_resource_missing"


class MeterStreamUnavailable(StripeGatewayError):
    """The v2 meter event stream is not there for this account (Stripe answered 404 or 403):
    report usage through v1 meter events instead."""


class MeterSessionExpired(StripeGatewayError):
    """The meter event session's token expired or is not known: create a new session."""


class InvalidSignature(Exception):
    """The webhook's `Stripe-Signature` is missing, forged or older than the tolerance."""


def _translate(exc: stripe.StripeError) -> StripeGatewayError:
    status = exc.http_status
    code = getattr(exc, "code", None)
    if isinstance(exc, stripe.CardError):
        return StripeCardError(
            exc.user_message or "Your card was declined.", stripe_code=code, http_status=status
        )
    if isinstance(exc, stripe.InvalidRequestError) and code == "resource_missing":
        return StripeNotFound(exc.user_message or "Not found at Stripe.", http_status=status)
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        message = "Stripe could not be reached. Please try again in a moment."
    elif isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        message = "The portal's Stripe key was refused. Please tell the administrator."
    else:
        message = exc.user_message or "Stripe could not complete the request. Please try again."
    param = getattr(exc.error, "param", None) if exc.error else None
    return StripeGatewayError(message, stripe_code=code, http_status=status, stripe_param=param)


async def _request(call: Awaitable[Any]) -> Json:
    """Await one SDK call; Stripe's errors become the gateway's."""
    try:
        return _plain(await call)
    except stripe.StripeError as exc:
        raise _translate(exc) from exc


async def _list(call: Awaitable[Any]) -> list[Json]:
    """Every object of a list call, following Stripe's pagination."""
    try:
        page = await call
        return [_plain(item) async for item in page.auto_paging_iter()]
    except stripe.StripeError as exc:
        raise _translate(exc) from exc


def _plain(obj: Any) -> Json:
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict(recursive=True, for_json=True)
    return dict(obj)


def idempotency_key(*parts: object) -> str:
    """A key from our own ids; long or odd parts are hashed so it stays within Stripe's 255."""
    raw = ":".join(str(part) for part in parts)
    if len(raw) <= 200:
        return raw
    return raw[:120] + ":" + hashlib.sha256(raw.encode()).hexdigest()


def content_hash(value: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LineItem:
    """A Checkout line item; a metered price takes no quantity (`quantity=None`)."""

    price: str
    quantity: int | None = 1


@dataclass(frozen=True)
class CheckoutOptions:
    """What the gateway adds to Checkout Sessions (and, for tax, to plan changes) when the
    settings turn it on: Stripe's `billing_address_collection`, `tax_id_collection`,
    `allow_promotion_codes` and `automatic_tax` (docs/billing-details.md)."""

    collect_billing_address: Literal["auto", "required"] | None = None
    collect_tax_id: bool = False
    allow_promotion_codes: bool = False
    automatic_tax: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckoutOptions:
        address = settings.checkout_collect_billing_address
        return cls(
            collect_billing_address=address if address in ("auto", "required") else None,  # type: ignore[arg-type]
            collect_tax_id=settings.checkout_collect_tax_id,
            allow_promotion_codes=settings.checkout_allow_promotion_codes,
            automatic_tax=settings.stripe_automatic_tax,
        )


class GatewayBase:
    """The SDK client the gateway's calls share (`client.v1.*`, async methods)."""

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = MAX_NETWORK_RETRIES,
        thin_webhook_secret: str | None = None,
        checkout_options: CheckoutOptions | None = None,
    ) -> None:
        base_addresses: BaseAddresses = {}
        if api_base:
            base_addresses = {
                "api": api_base,
                "files": api_base,
                "connect": api_base,
                "meter_events": api_base,
            }
        self.api_base = api_base or stripe.DEFAULT_API_BASE
        self.webhook_secret = webhook_secret
        self.checkout_options = checkout_options or CheckoutOptions()
        # Thin events come through an event destination of their own, with its own secret.
        self.thin_webhook_secret = thin_webhook_secret or webhook_secret
        self.client = stripe.StripeClient(
            api_key,
            base_addresses=base_addresses,
            max_network_retries=max_network_retries,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            settings.effective_stripe_secret_key,
            settings.stripe_webhook_secret,
            api_base=settings.effective_stripe_api_base,
            thin_webhook_secret=settings.stripe_thin_webhook_secret,
            checkout_options=CheckoutOptions.from_settings(settings),
        )
