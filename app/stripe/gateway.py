"""The Stripe gateway: the only module that imports `stripe`.

Everything the portal asks of Stripe goes through `StripeGateway`, a thin wrapper over
`stripe.StripeClient` (`client.v1.*`, async methods). It

- builds every request's parameters as the SDK's typed `*Params` dicts, so mypy
  (`make typecheck`) rejects a misspelt or mistyped parameter;
- sends an `Idempotency-Key` with every POST, chosen by the caller from our own ids, so a
  retry (the SDK's `max_network_retries`, the worker's, a user's double submit) is safe;
- returns plain `dict`s (the JSON Stripe sent), the same shape the webhook handlers read
  from events, so services never touch SDK objects;
- turns `stripe.StripeError` into `StripeGatewayError` (a `DomainError`) with a message
  that can be shown to the user.

`STRIPE_API_BASE` (or the emulator's address when no key is set) replaces Stripe's API
address; the API version is the one the SDK pins.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast

import stripe

from app.config import Settings
from app.lib.errors import DomainError
from app.stripe.objects import (
    Account,
    Charge,
    CheckoutSession,
    Customer,
    Invoice,
    InvoiceLineItem,
    InvoicePreview,
    PaymentIntent,
    PaymentMethod,
    PaymentMethodConfiguration,
    PortalConfiguration,
    Price,
    Subscription,
    SubscriptionSchedule,
    WebhookEndpoint,
)

if TYPE_CHECKING:
    from stripe._base_address import BaseAddresses
    from stripe.params import (
        CustomerCreateParams,
        CustomerUpdateParams,
        DisputeListParams,
        InvoiceCreatePreviewParams,
        InvoiceCreatePreviewParamsSubscriptionDetails,
        InvoiceCreatePreviewParamsSubscriptionDetailsItem,
        InvoiceLineItemListParams,
        InvoiceListParams,
        PaymentMethodListParams,
        PriceCreateParams,
        PriceListParams,
        PriceUpdateParams,
        ProductCreateParams,
        ProductUpdateParams,
        SubscriptionListParams,
        SubscriptionScheduleCreateParams,
        SubscriptionScheduleUpdateParams,
        SubscriptionScheduleUpdateParamsPhase,
        SubscriptionScheduleUpdateParamsPhaseItem,
        SubscriptionUpdateParams,
        SubscriptionUpdateParamsItem,
    )
    from stripe.params.billing import MeterCreateParams, MeterEventCreateParams
    from stripe.params.billing_portal import SessionCreateParams as PortalSessionCreateParams
    from stripe.params.checkout import (
        SessionCreateParams,
        SessionCreateParamsLineItem,
        SessionListParams,
    )
    from stripe.params.v2.billing import (
        MeterEventStreamCreateParams,
        MeterEventStreamCreateParamsEvent,
    )

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
    ) -> None:
        super().__init__(message, code=code)
        self.stripe_code = stripe_code
        self.http_status = http_status


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
    return StripeGatewayError(message, stripe_code=code, http_status=status)


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
class ItemChange:
    """One entry of a subscription update's `items`: change an item's price (`id` and
    `price`), add a price (`price` only; metered prices take no quantity) or remove an
    item (`id` and `deleted`)."""

    id: str | None = None
    price: str | None = None
    deleted: bool = False


def _update_item(change: ItemChange) -> SubscriptionUpdateParamsItem:
    entry: SubscriptionUpdateParamsItem = {}
    if change.id is not None:
        entry["id"] = change.id
    if change.deleted:
        entry["deleted"] = True
    elif change.price is not None:
        entry["price"] = change.price
    return entry


@dataclass(frozen=True)
class Phase:
    """One phase of a subscription schedule: its prices (metered ones without a quantity)
    from `start_date` (None: where the previous phase ends, or the current phase's start)
    to `end_date` (None: one period of its price)."""

    items: list[LineItem]
    start_date: int | None = None
    end_date: int | None = None


@dataclass(frozen=True)
class MeterEvent:
    """Usage for a Billing Meter: `value` for a customer at `timestamp` (unix time). Stripe
    counts an `identifier` once (for at least 24 h), whether it came through v1 or v2."""

    event_name: str
    stripe_customer_id: str
    value: int
    identifier: str
    timestamp: int


@dataclass(frozen=True)
class MeterEventSession:
    """A v2 meter event session: `token` authenticates stream calls until `expires_at`, on
    Stripe's clock (as is `created`: the difference is its life on any clock)."""

    token: str
    created: datetime
    expires_at: datetime


METER_STREAM_MAX_EVENTS = 100  # per meter_event_stream call


async def _meter_stream_call(call: Awaitable[Any], *, with_token: bool) -> Any:
    """Await a v2 meter stream call: an expired (or, `with_token`, refused) session token is
    `MeterSessionExpired`; an endpoint the account lacks (404, 403) `MeterStreamUnavailable`."""
    try:
        return await call
    except stripe.StripeError as exc:
        expired = isinstance(exc, stripe.TemporarySessionExpiredError) or (
            with_token and isinstance(exc, stripe.AuthenticationError)
        )
        message = exc.user_message or str(exc)
        if expired:
            raise MeterSessionExpired(message, http_status=exc.http_status) from exc
        if exc.http_status in (403, 404):
            raise MeterStreamUnavailable(message, http_status=exc.http_status) from exc
        raise _translate(exc) from exc


class StripeGateway:
    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = MAX_NETWORK_RETRIES,
        thin_webhook_secret: str | None = None,
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
        # Thin events come through an event destination of their own, with its own secret.
        self.thin_webhook_secret = thin_webhook_secret or webhook_secret
        self.client = stripe.StripeClient(
            api_key,
            base_addresses=base_addresses,
            max_network_retries=max_network_retries,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> StripeGateway:
        return cls(
            settings.effective_stripe_secret_key,
            settings.stripe_webhook_secret,
            api_base=settings.effective_stripe_api_base,
            thin_webhook_secret=settings.stripe_thin_webhook_secret,
        )

    # Webhooks ---------------------------------------------------------------------------

    def verify_signature(self, payload: bytes, signature: str | None) -> None:
        """Check the signature on the raw body (300 s tolerance); InvalidSignature if it fails.
        The body is not parsed here: the ledger checks a signed body's shape itself."""
        if not signature:
            raise InvalidSignature("missing Stripe-Signature header")
        try:
            # The header only: Stripe's construct_event would parse the body, without limits.
            stripe.WebhookSignature.verify_header(
                payload, signature, self.webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(str(exc)) from None
        except (ValueError, IndexError, KeyError) as exc:  # malformed header or body
            raise InvalidSignature(f"malformed webhook: {exc}") from None

    # Customers --------------------------------------------------------------------------

    async def create_customer(
        self, *, email: str | None, name: str | None, metadata: dict[str, str], key: str
    ) -> Customer:
        params: CustomerCreateParams = {"metadata": metadata}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        return cast(
            Customer,
            await _request(self.client.v1.customers.create_async(params, {"idempotency_key": key})),
        )

    async def retrieve_customer(self, customer_id: str) -> Customer:
        return cast(Customer, await _request(self.client.v1.customers.retrieve_async(customer_id)))

    async def set_default_payment_method(
        self, customer_id: str, payment_method_id: str, *, key: str
    ) -> Customer:
        params: CustomerUpdateParams = {
            "invoice_settings": {"default_payment_method": payment_method_id}
        }
        return cast(
            Customer,
            await _request(
                self.client.v1.customers.update_async(customer_id, params, {"idempotency_key": key})
            ),
        )

    # Catalog ----------------------------------------------------------------------------

    async def retrieve_product(self, product_id: str) -> Json | None:
        try:
            return await _request(self.client.v1.products.retrieve_async(product_id))
        except StripeNotFound:
            return None

    async def create_product(
        self,
        *,
        product_id: str,
        name: str,
        description: str | None,
        metadata: dict[str, str],
        key: str,
    ) -> Json:
        params: ProductCreateParams = {"id": product_id, "name": name, "metadata": metadata}
        if description:
            params["description"] = description
        return await _request(
            self.client.v1.products.create_async(params, {"idempotency_key": key})
        )

    async def update_product(
        self,
        product_id: str,
        *,
        name: str,
        description: str | None,
        metadata: dict[str, str],
        key: str,
    ) -> Json:
        params: ProductUpdateParams = {
            "name": name,
            "description": description or "",
            "metadata": metadata,
            "active": True,
        }
        return await _request(
            self.client.v1.products.update_async(product_id, params, {"idempotency_key": key})
        )

    async def prices_by_lookup_key(self, lookup_keys: list[str]) -> dict[str, Json]:
        """Active prices for these lookup keys (at most one per key, as Stripe guarantees)."""
        found: dict[str, Json] = {}
        for start in range(0, len(lookup_keys), 10):
            params: PriceListParams = {
                "lookup_keys": lookup_keys[start : start + 10],
                "active": True,
                "limit": 100,
            }
            try:
                page = await self.client.v1.prices.list_async(params)
            except stripe.StripeError as exc:
                raise _translate(exc) from exc
            for price in page.data:
                if price.lookup_key:
                    found[price.lookup_key] = _plain(price)
        return found

    async def create_price(
        self,
        *,
        product_id: str,
        lookup_key: str,
        amount: int,
        currency: str,
        interval: Literal["month", "year"] | None,
        metadata: dict[str, str],
        key: str,
        meter_id: str | None = None,
    ) -> Json:
        """A price; with `meter_id` a metered recurring price billing that meter's usage."""
        params: PriceCreateParams = {
            "product": product_id,
            "currency": currency,
            "unit_amount": amount,
            "lookup_key": lookup_key,
            # Moves the key off an older price with other terms, so lookups find this one.
            "transfer_lookup_key": True,
            "metadata": metadata,
        }
        if interval is not None:
            params["recurring"] = {"interval": interval}
            if meter_id is not None:
                params["recurring"]["usage_type"] = "metered"
                params["recurring"]["meter"] = meter_id
        return await _request(self.client.v1.prices.create_async(params, {"idempotency_key": key}))

    async def archive_price(self, price_id: str, *, key: str) -> Json:
        params: PriceUpdateParams = {"active": False}
        return await _request(
            self.client.v1.prices.update_async(price_id, params, {"idempotency_key": key})
        )

    # Checkout and the billing portal ----------------------------------------------------

    async def create_checkout_session(
        self,
        *,
        mode: Literal["subscription", "payment", "setup"],
        customer_id: str,
        client_reference_id: str,
        success_url: str,
        cancel_url: str,
        metadata: dict[str, str],
        key: str,
        line_items: list[LineItem] | None = None,
        trial_period_days: int | None = None,
        currency: str | None = None,
    ) -> CheckoutSession:
        params: SessionCreateParams = {
            "mode": mode,
            "customer": customer_id,
            "client_reference_id": client_reference_id,
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": metadata,
        }
        if line_items:
            params["line_items"] = []
            for item in line_items:
                line: SessionCreateParamsLineItem = {"price": item.price}
                if item.quantity is not None:
                    line["quantity"] = item.quantity
                params["line_items"].append(line)
        if mode == "subscription":
            # Flexible billing mode (the API's default now, asked for explicitly): a metered
            # price removed mid-cycle (a plan change) bills the usage reported so far, where
            # classic mode would drop it.
            params["subscription_data"] = {
                "metadata": metadata,
                "billing_mode": {"type": "flexible"},
            }
            if trial_period_days:
                params["subscription_data"]["trial_period_days"] = trial_period_days
        elif mode == "payment":
            params["payment_intent_data"] = {"metadata": metadata}
            params["invoice_creation"] = {"enabled": True, "invoice_data": {"metadata": metadata}}
        else:
            params["setup_intent_data"] = {"metadata": metadata}
            params["currency"] = currency or "usd"
        created = await _request(
            self.client.v1.checkout.sessions.create_async(params, {"idempotency_key": key})
        )
        return cast(CheckoutSession, created)

    async def retrieve_checkout_session(self, session_id: str) -> CheckoutSession:
        found = await _request(
            self.client.v1.checkout.sessions.retrieve_async(session_id, {"expand": ["line_items"]})
        )
        return cast(CheckoutSession, found)

    async def open_checkout_sessions(self, customer_id: str) -> list[CheckoutSession]:
        """The customer's Checkout Sessions that can still be paid."""
        params: SessionListParams = {"customer": customer_id, "status": "open", "limit": 100}
        found = await _list(self.client.v1.checkout.sessions.list_async(params))
        return cast(list[CheckoutSession], found)

    async def expire_checkout_session(self, session_id: str) -> CheckoutSession:
        """Close an open Checkout Session: its page no longer takes a payment."""
        expired = await _request(self.client.v1.checkout.sessions.expire_async(session_id))
        return cast(CheckoutSession, expired)

    async def create_portal_session(self, *, customer_id: str, return_url: str, key: str) -> Json:
        params: PortalSessionCreateParams = {"customer": customer_id, "return_url": return_url}
        return await _request(
            self.client.v1.billing_portal.sessions.create_async(params, {"idempotency_key": key})
        )

    # The account's settings (read only: `billing-portal stripe-check`) ----------------------

    async def retrieve_account(self) -> Account:
        """The account the key belongs to (`GET /v1/account`)."""
        return cast(Account, await _request(self.client.v1.accounts.retrieve_current_async()))

    async def list_portal_configurations(self) -> list[PortalConfiguration]:
        found = await _list(self.client.v1.billing_portal.configurations.list_async({"limit": 100}))
        return cast(list[PortalConfiguration], found)

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        found = await _list(self.client.v1.webhook_endpoints.list_async({"limit": 100}))
        return cast(list[WebhookEndpoint], found)

    async def list_payment_method_configurations(self) -> list[PaymentMethodConfiguration]:
        found = await _list(self.client.v1.payment_method_configurations.list_async({"limit": 100}))
        return cast(list[PaymentMethodConfiguration], found)

    # Subscriptions ----------------------------------------------------------------------

    async def retrieve_subscription(self, subscription_id: str) -> Subscription:
        return cast(
            Subscription,
            await _request(self.client.v1.subscriptions.retrieve_async(subscription_id)),
        )

    async def list_subscriptions(self, customer_id: str) -> list[Subscription]:
        params: SubscriptionListParams = {"customer": customer_id, "status": "all", "limit": 100}
        return cast(
            list[Subscription], await _list(self.client.v1.subscriptions.list_async(params))
        )

    async def change_subscription_price(
        self,
        subscription_id: str,
        *,
        item_id: str,
        price_id: str,
        proration_behavior: ProrationBehavior,
        metadata: dict[str, str],
        key: str,
    ) -> Subscription:
        params: SubscriptionUpdateParams = {
            "items": [{"id": item_id, "price": price_id}],
            "proration_behavior": proration_behavior,
            "cancel_at_period_end": False,
            "metadata": metadata,
        }
        return await self._update_subscription(subscription_id, params, key)

    async def update_subscription_items(
        self,
        subscription_id: str,
        *,
        items: list[ItemChange],
        proration_behavior: ProrationBehavior,
        metadata: dict[str, str],
        key: str,
        payment_behavior: PaymentBehavior | None = None,
        end_trial: bool = False,
        proration_date: int | None = None,
    ) -> Subscription:
        """Change, add and remove items in one update (a plan change with its metered items).

        `payment_behavior="error_if_incomplete"` makes Stripe refuse the whole update (a card
        error) when the invoice it creates cannot be paid right away; `pending_if_incomplete`
        makes it the subscription's `pending_update` until that invoice is paid (Stripe then
        takes only the update's own parameters: a plan set to end is not resumed by it).
        `end_trial` ends a trial now, so the first paid period starts (and is invoiced) with
        the change.
        `proration_date` prorates as of that time: the one of a preview makes the update
        charge exactly what the preview showed."""
        params: SubscriptionUpdateParams = {
            "items": [_update_item(change) for change in items],
            "proration_behavior": proration_behavior,
            "metadata": metadata,
        }
        if payment_behavior != "pending_if_incomplete":  # a pending update takes no more
            params["cancel_at_period_end"] = False
        if payment_behavior is not None:
            params["payment_behavior"] = payment_behavior
        if end_trial:
            params["trial_end"] = "now"
        if proration_date is not None:
            params["proration_date"] = proration_date
        return await self._update_subscription(subscription_id, params, key)

    async def set_cancel_at_period_end(
        self, subscription_id: str, cancel: bool, *, key: str
    ) -> Subscription:
        params: SubscriptionUpdateParams = {"cancel_at_period_end": cancel}
        return await self._update_subscription(subscription_id, params, key)

    async def set_subscription_payment_method(
        self, subscription_id: str, payment_method_id: str, *, key: str
    ) -> Subscription:
        params: SubscriptionUpdateParams = {"default_payment_method": payment_method_id}
        return await self._update_subscription(subscription_id, params, key)

    async def _update_subscription(
        self, subscription_id: str, params: SubscriptionUpdateParams, key: str
    ) -> Subscription:
        return cast(
            Subscription,
            await _request(
                self.client.v1.subscriptions.update_async(
                    subscription_id, params, {"idempotency_key": key}
                )
            ),
        )

    async def preview_subscription_change(
        self,
        subscription_id: str,
        *,
        items: list[ItemChange],
        proration_behavior: ProrationBehavior,
        proration_date: int | None,
        end_trial: bool = False,
    ) -> InvoicePreview:
        """The invoice Stripe would make for this change of the subscription's items, computed
        without making anything (`invoices.create_preview`): with `always_invoice` the invoice
        the update creates now, otherwise the next renewal with the change. The update given
        the same items and `proration_date` charges exactly this. No idempotency key: a
        preview changes nothing, and a replayed answer would hide a change since."""
        # The same entries as the update's (`id`, `price`, `deleted`).
        preview_items = cast(
            "list[InvoiceCreatePreviewParamsSubscriptionDetailsItem]",
            [_update_item(change) for change in items],
        )
        details: InvoiceCreatePreviewParamsSubscriptionDetails = {
            "items": preview_items,
            "proration_behavior": proration_behavior,
        }
        if proration_date is not None:  # else as of now, by Stripe's clock
            details["proration_date"] = proration_date
        if end_trial:
            details["trial_end"] = "now"
        params: InvoiceCreatePreviewParams = {
            "subscription": subscription_id,
            "subscription_details": details,
        }
        found = await _request(self.client.v1.invoices.create_preview_async(params))
        return cast(InvoicePreview, found)

    # Subscription schedules -------------------------------------------------------------

    async def create_subscription_schedule(
        self, subscription_id: str, *, key: str
    ) -> SubscriptionSchedule:
        """A schedule managing the subscription, its one phase the current period as it is."""
        params: SubscriptionScheduleCreateParams = {"from_subscription": subscription_id}
        created = await _request(
            self.client.v1.subscription_schedules.create_async(params, {"idempotency_key": key})
        )
        return cast(SubscriptionSchedule, created)

    async def set_schedule_phases(
        self,
        schedule_id: str,
        *,
        phases: list[Phase],
        metadata: dict[str, str],
        key: str,
    ) -> SubscriptionSchedule:
        """Replace the schedule's phases; after the last one the subscription is released
        and goes on as that phase left it (`end_behavior=release`)."""
        phase_params: list[SubscriptionScheduleUpdateParamsPhase] = []
        for phase in phases:
            items: list[SubscriptionScheduleUpdateParamsPhaseItem] = []
            for line in phase.items:
                item: SubscriptionScheduleUpdateParamsPhaseItem = {"price": line.price}
                if line.quantity is not None:
                    item["quantity"] = line.quantity
                items.append(item)
            entry: SubscriptionScheduleUpdateParamsPhase = {
                "items": items,
                "proration_behavior": "none",
            }
            if phase.start_date is not None:
                entry["start_date"] = phase.start_date
            if phase.end_date is not None:
                entry["end_date"] = phase.end_date
            phase_params.append(entry)
        params: SubscriptionScheduleUpdateParams = {
            "phases": phase_params,
            "end_behavior": "release",
            "metadata": metadata,
        }
        updated = await _request(
            self.client.v1.subscription_schedules.update_async(
                schedule_id, params, {"idempotency_key": key}
            )
        )
        return cast(SubscriptionSchedule, updated)

    async def retrieve_subscription_schedule(self, schedule_id: str) -> SubscriptionSchedule:
        found = await _request(self.client.v1.subscription_schedules.retrieve_async(schedule_id))
        return cast(SubscriptionSchedule, found)

    async def release_subscription_schedule(
        self, schedule_id: str, *, key: str
    ) -> SubscriptionSchedule:
        """Detach the schedule: the subscription stays as it is now, its phases are dropped."""
        released = await _request(
            self.client.v1.subscription_schedules.release_async(
                schedule_id, None, {"idempotency_key": key}
            )
        )
        return cast(SubscriptionSchedule, released)

    # Invoices ---------------------------------------------------------------------------

    async def retrieve_invoice(self, invoice_id: str) -> Invoice:
        """The invoice with its `payments` (Stripe includes them only when asked)."""
        return cast(
            Invoice,
            await _request(
                self.client.v1.invoices.retrieve_async(invoice_id, {"expand": ["payments"]})
            ),
        )

    async def list_invoices(self, customer_id: str) -> list[Invoice]:
        params: InvoiceListParams = {
            "customer": customer_id,
            "limit": 100,
            "expand": ["data.payments"],
        }
        return cast(list[Invoice], await _list(self.client.v1.invoices.list_async(params)))

    async def invoice_lines(self, invoice_id: str) -> list[InvoiceLineItem]:
        """Every line of an invoice (the invoice itself carries the first ten)."""
        params: InvoiceLineItemListParams = {"limit": 100}
        found = await _list(self.client.v1.invoices.line_items.list_async(invoice_id, params))
        return cast(list[InvoiceLineItem], found)

    async def retrieve_price(self, price_id: str) -> Price:
        return cast(Price, await _request(self.client.v1.prices.retrieve_async(price_id)))

    # Payments ---------------------------------------------------------------------------

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        """A PaymentIntent with its latest charge expanded (the card it was paid with)."""
        found = await _request(
            self.client.v1.payment_intents.retrieve_async(
                payment_intent_id, {"expand": ["latest_charge"]}
            )
        )
        return cast(PaymentIntent, found)

    async def retrieve_charge(self, charge_id: str) -> Charge:
        return cast(Charge, await _request(self.client.v1.charges.retrieve_async(charge_id)))

    async def charge_disputes(self, charge_id: str) -> list[Json]:
        """The disputes opened on a charge (their `status`, `amount`)."""
        params: DisputeListParams = {"charge": charge_id, "limit": 100}
        return await _list(self.client.v1.disputes.list_async(params))

    async def checkout_sessions_of_payment(self, payment_intent_id: str) -> list[CheckoutSession]:
        """The Checkout Session(s) whose payment is this PaymentIntent."""
        params: SessionListParams = {"payment_intent": payment_intent_id, "limit": 10}
        found = await _list(self.client.v1.checkout.sessions.list_async(params))
        return cast(list[CheckoutSession], found)

    # Payment methods --------------------------------------------------------------------

    async def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        """The customer's saved payment methods of every type (cards, SEPA Direct Debit, US
        bank accounts, Link...): without `type`, Stripe lists them all."""
        params: PaymentMethodListParams = {"customer": customer_id, "limit": 100}
        return cast(
            list[PaymentMethod], await _list(self.client.v1.payment_methods.list_async(params))
        )

    async def retrieve_payment_method(self, payment_method_id: str) -> PaymentMethod:
        return cast(
            PaymentMethod,
            await _request(self.client.v1.payment_methods.retrieve_async(payment_method_id)),
        )

    async def detach_payment_method(self, payment_method_id: str, *, key: str) -> PaymentMethod:
        return cast(
            PaymentMethod,
            await _request(
                self.client.v1.payment_methods.detach_async(
                    payment_method_id, None, {"idempotency_key": key}
                )
            ),
        )

    # Billing meters ---------------------------------------------------------------------

    async def list_meters(self) -> list[Json]:
        return await _list(self.client.v1.billing.meters.list_async({"limit": 100}))

    async def create_meter(
        self,
        *,
        display_name: str,
        event_name: str,
        formula: Literal["count", "sum", "last"],
        key: str,
    ) -> Json:
        params: MeterCreateParams = {
            "display_name": display_name,
            "event_name": event_name,
            "default_aggregation": {"formula": formula},
            "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": {"event_payload_key": "value"},
        }
        return await _request(
            self.client.v1.billing.meters.create_async(params, {"idempotency_key": key})
        )

    async def create_meter_event(
        self,
        *,
        event_name: str,
        stripe_customer_id: str,
        value: int,
        identifier: str,
        timestamp: int,
    ) -> Json:
        """Report usage; Stripe counts an `identifier` once, so a resend is harmless."""
        params: MeterEventCreateParams = {
            "event_name": event_name,
            "payload": {"stripe_customer_id": stripe_customer_id, "value": str(value)},
            "identifier": identifier,
            "timestamp": timestamp,
        }
        return await _request(
            self.client.v1.billing.meter_events.create_async(
                params, {"idempotency_key": idempotency_key("meter-event", identifier)}
            )
        )

    async def create_meter_event_session(self) -> MeterEventSession:
        """A token for the v2 meter event stream (15 minutes at Stripe). No idempotency key of
        ours: a replayed answer would be an old token (the SDK sends one per call, kept across
        its own retries)."""
        session = await _meter_stream_call(
            self.client.v2.billing.meter_event_session.create_async(), with_token=False
        )
        return MeterEventSession(
            token=str(session.authentication_token),
            created=datetime.fromisoformat(str(session.created)),
            expires_at=datetime.fromisoformat(str(session.expires_at)),
        )

    async def send_meter_events(self, token: str, events: Sequence[MeterEvent]) -> None:
        """Up to `METER_STREAM_MAX_EVENTS` events in one v2 stream call, on the `meter_events`
        address with a session's token. Stripe takes the call whole or refuses it (and checks
        the events later: `v1.billing.meter.error_report_triggered`); a resend is counted once
        (identifiers), so the SDK's own idempotency key is enough."""
        if not 0 < len(events) <= METER_STREAM_MAX_EVENTS:
            raise ValueError(f"1 to {METER_STREAM_MAX_EVENTS} events per call, not {len(events)}")
        batch: list[MeterEventStreamCreateParamsEvent] = [
            {
                "event_name": event.event_name,
                "identifier": event.identifier,
                "payload": {
                    "stripe_customer_id": event.stripe_customer_id,
                    "value": str(event.value),
                },
                "timestamp": datetime.fromtimestamp(event.timestamp, UTC).isoformat(),
            }
            for event in events
        ]
        params: MeterEventStreamCreateParams = {"events": batch}
        await _meter_stream_call(
            self.client.v2.billing.meter_event_stream.create_async(params, {"api_key": token}),
            with_token=True,
        )

    # Thin (v2) events -------------------------------------------------------------------

    async def parse_thin_event(self, payload: bytes, signature: str | None) -> ThinEvent:
        """Verify a thin event notification (its event destination's secret, the webhook's
        tolerance) and fetch the event's data from Stripe; InvalidSignature if the signature
        does not hold."""
        if not signature:
            raise InvalidSignature("missing Stripe-Signature header")
        try:
            notification = self.client.parse_event_notification(
                payload, signature, self.thin_webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(str(exc)) from None
        except (ValueError, IndexError, KeyError, TypeError) as exc:  # malformed header or body
            raise InvalidSignature(f"malformed event notification: {exc}") from None
        related = getattr(notification, "related_object", None)
        try:
            event = await notification.fetch_event_async()
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        data = getattr(event, "data", None)
        return ThinEvent(
            id=str(notification.id),
            type=str(notification.type),
            created=_unix_time(notification.created),
            related_object_id=str(related.id) if related is not None else None,
            data=_plain(data) if data is not None else {},
        )


def _unix_time(iso: object) -> int:
    """A v2 timestamp (ISO 8601) as unix time; 0 when it is not one."""
    try:
        return int(datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


@dataclass(frozen=True)
class ThinEvent:
    """A thin (v2) event as the notification names it, with the data fetched from Stripe."""

    id: str
    type: str
    created: int  # unix time
    related_object_id: str | None
    data: Json


__all__ = [
    "API_VERSION",
    "WEBHOOK_TOLERANCE_SECONDS",
    "InvalidSignature",
    "ItemChange",
    "LineItem",
    "MeterEvent",
    "MeterEventSession",
    "MeterSessionExpired",
    "MeterStreamUnavailable",
    "StripeCardError",
    "StripeGateway",
    "StripeGatewayError",
    "StripeNotFound",
    "ThinEvent",
    "content_hash",
    "idempotency_key",
]
