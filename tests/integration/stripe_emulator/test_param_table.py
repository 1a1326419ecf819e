"""The emulator's parameter table against the pinned SDK: every parameter it accepts is one
Stripe documents for that endpoint, and every enum value one Stripe knows."""

from __future__ import annotations

import builtins
import importlib
import sys
import typing
from typing import Any, Literal, get_args, get_origin

import pytest
import typing_extensions

from app.stripe_emulator import server  # noqa: F401  (registers the routes)
from app.stripe_emulator.param_table import ALLOWED
from app.stripe_emulator.routing import ROUTES
from app.stripe_emulator.strict_params import ANY, MAP, Enum

# (method, template) -> the SDK's params TypedDict for that endpoint ("module.Name" under
# stripe.params). Endpoints the SDK models elsewhere (v2, the emulator's own) are absent.
SDK_PARAMS = {
    ("POST", "/v1/customers"): "CustomerCreateParams",
    ("GET", "/v1/customers/{id}"): "CustomerRetrieveParams",
    ("POST", "/v1/customers/{id}"): "CustomerUpdateParams",
    ("DELETE", "/v1/customers/{id}"): "CustomerDeleteParams",
    ("GET", "/v1/customers"): "CustomerListParams",
    ("GET", "/v1/customers/{id}/payment_methods"): "CustomerListPaymentMethodsParams",
    ("GET", "/v1/customers/{id}/payment_methods/{pm}"): "CustomerRetrievePaymentMethodParams",
    ("POST", "/v1/customers/{id}/balance_transactions"): "CustomerCreateBalanceTransactionParams",
    ("GET", "/v1/customers/{id}/balance_transactions"): "CustomerListBalanceTransactionsParams",
    (
        "GET",
        "/v1/customers/{id}/balance_transactions/{txn}",
    ): "CustomerRetrieveBalanceTransactionParams",
    (
        "POST",
        "/v1/customers/{id}/balance_transactions/{txn}",
    ): "CustomerModifyBalanceTransactionParams",
    ("POST", "/v1/invoices/create_preview"): "InvoiceCreatePreviewParams",
    ("POST", "/v1/products"): "ProductCreateParams",
    ("GET", "/v1/products/{id}"): "ProductRetrieveParams",
    ("POST", "/v1/products/{id}"): "ProductUpdateParams",
    ("GET", "/v1/products"): "ProductListParams",
    ("POST", "/v1/prices"): "PriceCreateParams",
    ("GET", "/v1/prices/{id}"): "PriceRetrieveParams",
    ("POST", "/v1/prices/{id}"): "PriceUpdateParams",
    ("GET", "/v1/prices"): "PriceListParams",
    ("POST", "/v1/subscriptions"): "SubscriptionCreateParams",
    ("GET", "/v1/subscriptions/{id}"): "SubscriptionRetrieveParams",
    ("POST", "/v1/subscriptions/{id}"): "SubscriptionUpdateParams",
    ("DELETE", "/v1/subscriptions/{id}"): "SubscriptionCancelParams",
    ("GET", "/v1/subscriptions"): "SubscriptionListParams",
    ("POST", "/v1/subscriptions/{id}/resume"): "SubscriptionResumeParams",
    ("POST", "/v1/subscription_schedules"): "SubscriptionScheduleCreateParams",
    ("GET", "/v1/subscription_schedules/{id}"): "SubscriptionScheduleRetrieveParams",
    ("POST", "/v1/subscription_schedules/{id}"): "SubscriptionScheduleUpdateParams",
    ("POST", "/v1/subscription_schedules/{id}/release"): "SubscriptionScheduleReleaseParams",
    ("POST", "/v1/subscription_schedules/{id}/cancel"): "SubscriptionScheduleCancelParams",
    ("GET", "/v1/subscription_schedules"): "SubscriptionScheduleListParams",
    ("POST", "/v2/billing/meter_event_session"): "v2.billing.MeterEventSessionCreateParams",
    ("POST", "/v2/billing/meter_event_stream"): "v2.billing.MeterEventStreamCreateParams",
    ("POST", "/v2/billing/meter_events"): "v2.billing.MeterEventCreateParams",
    ("GET", "/v2/core/events/{id}"): "v2.core.EventRetrieveParams",
    ("GET", "/v1/subscription_items"): "SubscriptionItemListParams",
    ("GET", "/v1/subscription_items/{id}"): "SubscriptionItemRetrieveParams",
    ("GET", "/v1/invoices"): "InvoiceListParams",
    ("GET", "/v1/invoices/{id}"): "InvoiceRetrieveParams",
    ("GET", "/v1/invoices/{id}/lines"): "InvoiceListLinesParams",
    ("POST", "/v1/invoices/{id}/pay"): "InvoicePayParams",
    ("POST", "/v1/invoices/{id}/void"): "InvoiceVoidInvoiceParams",
    ("POST", "/v1/invoices/{id}/mark_uncollectible"): "InvoiceMarkUncollectibleParams",
    ("POST", "/v1/payment_methods"): "PaymentMethodCreateParams",
    ("GET", "/v1/payment_methods/{id}"): "PaymentMethodRetrieveParams",
    ("POST", "/v1/payment_methods/{id}"): "PaymentMethodUpdateParams",
    ("POST", "/v1/payment_methods/{id}/attach"): "PaymentMethodAttachParams",
    ("POST", "/v1/payment_methods/{id}/detach"): "PaymentMethodDetachParams",
    ("GET", "/v1/payment_methods"): "PaymentMethodListParams",
    ("GET", "/v1/payment_intents/{id}"): "PaymentIntentRetrieveParams",
    ("GET", "/v1/payment_intents"): "PaymentIntentListParams",
    ("GET", "/v1/setup_intents/{id}"): "SetupIntentRetrieveParams",
    ("GET", "/v1/setup_intents"): "SetupIntentListParams",
    ("GET", "/v1/charges/{id}"): "ChargeRetrieveParams",
    ("GET", "/v1/charges"): "ChargeListParams",
    ("POST", "/v1/refunds"): "RefundCreateParams",
    ("GET", "/v1/refunds/{id}"): "RefundRetrieveParams",
    ("GET", "/v1/refunds"): "RefundListParams",
    ("GET", "/v1/disputes/{id}"): "DisputeRetrieveParams",
    ("GET", "/v1/disputes"): "DisputeListParams",
    ("POST", "/v1/credit_notes"): "CreditNoteCreateParams",
    ("GET", "/v1/credit_notes/{id}"): "CreditNoteRetrieveParams",
    ("GET", "/v1/credit_notes"): "CreditNoteListParams",
    ("GET", "/v1/credit_notes/{id}/lines"): "CreditNoteListLinesParams",
    ("POST", "/v1/checkout/sessions"): "checkout.SessionCreateParams",
    ("GET", "/v1/checkout/sessions/{id}"): "checkout.SessionRetrieveParams",
    ("GET", "/v1/checkout/sessions/{id}/line_items"): "checkout.SessionListLineItemsParams",
    ("POST", "/v1/checkout/sessions/{id}/expire"): "checkout.SessionExpireParams",
    ("GET", "/v1/checkout/sessions"): "checkout.SessionListParams",
    ("POST", "/v1/billing_portal/sessions"): "billing_portal.SessionCreateParams",
    ("POST", "/v1/billing_portal/configurations"): "billing_portal.ConfigurationCreateParams",
    ("GET", "/v1/billing_portal/configurations"): "billing_portal.ConfigurationListParams",
    (
        "GET",
        "/v1/billing_portal/configurations/{id}",
    ): "billing_portal.ConfigurationRetrieveParams",
    (
        "POST",
        "/v1/billing_portal/configurations/{id}",
    ): "billing_portal.ConfigurationUpdateParams",
    ("GET", "/v1/account"): "AccountRetrieveCurrentParams",
    ("GET", "/v1/payment_method_configurations"): "PaymentMethodConfigurationListParams",
    (
        "GET",
        "/v1/payment_method_configurations/{id}",
    ): "PaymentMethodConfigurationRetrieveParams",
    ("POST", "/v1/webhook_endpoints"): "WebhookEndpointCreateParams",
    ("GET", "/v1/webhook_endpoints"): "WebhookEndpointListParams",
    ("GET", "/v1/webhook_endpoints/{id}"): "WebhookEndpointRetrieveParams",
    ("POST", "/v1/webhook_endpoints/{id}"): "WebhookEndpointUpdateParams",
    ("DELETE", "/v1/webhook_endpoints/{id}"): "WebhookEndpointDeleteParams",
    ("GET", "/v1/events"): "EventListParams",
    ("GET", "/v1/events/{id}"): "EventRetrieveParams",
    ("POST", "/v1/billing/meters"): "billing.MeterCreateParams",
    ("GET", "/v1/billing/meters"): "billing.MeterListParams",
    ("GET", "/v1/billing/meters/{id}"): "billing.MeterRetrieveParams",
    ("GET", "/v1/billing/meters/{id}/event_summaries"): "billing.MeterListEventSummariesParams",
    ("POST", "/v1/billing/meter_events"): "billing.MeterEventCreateParams",
    ("POST", "/v1/test_helpers/test_clocks"): "test_helpers.TestClockCreateParams",
    ("GET", "/v1/test_helpers/test_clocks/{id}"): "test_helpers.TestClockRetrieveParams",
    ("GET", "/v1/test_helpers/test_clocks"): "test_helpers.TestClockListParams",
    ("DELETE", "/v1/test_helpers/test_clocks/{id}"): "test_helpers.TestClockDeleteParams",
    ("POST", "/v1/test_helpers/test_clocks/{id}/advance"): "test_helpers.TestClockAdvanceParams",
}


def _sdk_class(name: str) -> Any:
    module, _, cls = name.rpartition(".")
    return getattr(importlib.import_module("stripe.params" + ("." + module if module else "")), cls)


class _Names(dict[str, Any]):
    """Names for evaluating the SDK's string annotations: the module's, then builtins; names
    the SDK imports only for type checkers (StripeContext...) stand for Any."""

    def __init__(self, module: str) -> None:
        super().__init__()
        self.module = sys.modules[module].__dict__

    def __missing__(self, key: str) -> Any:
        if key in self.module:
            return self.module[key]
        if hasattr(builtins, key):
            return getattr(builtins, key)
        if key[:1].isupper():
            return _Opaque
        raise KeyError(key)


class _Opaque:
    """A name the SDK imports only for type checkers; subscripting it gives Any."""

    def __class_getitem__(cls, item: Any) -> Any:
        return Any


def _hints(typed: Any) -> dict[str, Any]:
    return typing.get_type_hints(typed, localns=_Names(typed.__module__))


def _flatten(hint: Any) -> list[Any]:
    """The alternatives of a union (`Literal[...]|str`, `"Literal['']|X"`), nested ones too."""
    if get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return [alt for arg in get_args(hint) for alt in _flatten(arg)]
    return [hint]


def _typed_dict(hint: Any) -> Any | None:
    for alt in _flatten(hint):
        if typing_extensions.is_typeddict(alt):
            return alt
    return None


def _list_item(hint: Any) -> Any | None:
    for alt in _flatten(hint):
        if get_origin(alt) is list:
            return get_args(alt)[0]
    return None


def _literals(hint: Any) -> set[str]:
    return {
        value for alt in _flatten(hint) if get_origin(alt) is Literal for value in get_args(alt)
    }


def _compare(spec: Any, hint: Any, path: str, problems: list[str]) -> None:
    if spec is ANY or spec is MAP:
        return
    if isinstance(spec, Enum):
        unknown = spec.values - _literals(hint)
        if unknown:
            problems.append(f"{path}: values the SDK does not list: {sorted(unknown)}")
        return
    if isinstance(spec, list):
        item = _list_item(hint)
        if item is None:
            problems.append(f"{path}: not an array in the SDK")
        else:
            _compare(spec[0], item, path + "[]", problems)
        return
    typed = _typed_dict(hint)
    if typed is None:
        problems.append(f"{path}: not a hash in the SDK")
        return
    hints = _hints(typed)
    for key, child in spec.items():
        if key not in hints:
            problems.append(f"{path}[{key}]: unknown to the SDK")
        else:
            _compare(child, hints[key], f"{path}[{key}]", problems)


@pytest.mark.parametrize("endpoint", sorted(ALLOWED), ids=lambda e: f"{e[0]} {e[1]}")
def test_declared_parameters_are_stripes(endpoint: tuple[str, str]) -> None:
    if endpoint not in SDK_PARAMS:
        pytest.skip("not a v1 endpoint the SDK models with a params TypedDict")
    params_class = _sdk_class(SDK_PARAMS[endpoint])
    hints = _hints(params_class)
    problems: list[str] = []
    for key, spec in ALLOWED[endpoint].items():
        if key not in hints:
            problems.append(f"{key}: unknown to the SDK")
        else:
            _compare(spec, hints[key], key, problems)
    assert not problems, problems


def test_every_route_declares_its_parameters() -> None:
    undeclared = [
        (route.method, route.template)
        for route in ROUTES
        if (route.method, route.template) not in ALLOWED
    ]
    assert not undeclared, f"add these to app/stripe_emulator/param_table.py: {undeclared}"
