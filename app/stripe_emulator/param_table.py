"""The parameters each endpoint takes: the emulator answers any other with Stripe's
`parameter_unknown` (and an enum value not listed with Stripe's "Invalid X" error).

One entry per route (`(method, path template)` as in `@route`), listing what its handler
reads, by Stripe's names and the pinned API version's enum values (the test
`test_param_table.py` checks every name and value against the SDK's params TypedDicts).
A parameter Stripe knows but the emulator does not implement is left out on purpose: it is
refused loudly instead of ignored. To add an endpoint or a parameter, add it here beside its
handler's change. A route without an entry is not checked (the test lists such routes).
"""

from __future__ import annotations

from app.stripe_emulator.event_types import API_VERSIONS, EVENT_TYPES
from app.stripe_emulator.strict_params import ANY, LIST, MAP, Enum, Range, Spec, fields
from app.stripe_emulator.tax_ids import TYPES as TAX_ID_TYPES

INTERVAL = Enum("day", "month", "week", "year")
PAYMENT_BEHAVIOR = Enum(
    "allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"
)
TAX_BEHAVIOR = Enum("exclusive", "inclusive", "unspecified")
BILLING_MODE = fields(type=Enum("classic", "flexible"))
ADDRESS = fields("city", "country", "line1", "line2", "postal_code", "state")
# Stripe Tax: `automatic_tax[enabled]` (the emulator charges one fixed test rate).
AUTOMATIC_TAX = fields("enabled")

PRICE_CREATE = fields(
    "active",
    "currency",
    "lookup_key",
    "nickname",
    "product",
    "transfer_lookup_key",
    "unit_amount",
    "unit_amount_decimal",
    metadata=MAP,
    product_data=fields("name", metadata=MAP),
    recurring=fields(
        "interval_count", "meter", interval=INTERVAL, usage_type=Enum("licensed", "metered")
    ),
    tax_behavior=TAX_BEHAVIOR,
)
# `price_data` inline (Checkout line items) and a product's `default_price_data`.
PRICE_DATA = fields(
    "currency",
    "product",
    "unit_amount",
    "unit_amount_decimal",
    product_data=fields("name", "description", metadata=MAP),
    recurring=fields("interval_count", interval=INTERVAL),
    tax_behavior=TAX_BEHAVIOR,
)
DEFAULT_PRICE_DATA = fields(
    "currency",
    "unit_amount",
    "unit_amount_decimal",
    metadata=MAP,
    recurring=fields("interval_count", interval=INTERVAL),
    tax_behavior=TAX_BEHAVIOR,
)
CUSTOMER_FIELDS = fields(
    "email",
    "name",
    "description",
    "phone",
    metadata=MAP,
    address=ADDRESS,
    invoice_settings=fields("default_payment_method"),
)
CHECKOUT_CREATE = fields(
    "cancel_url",
    "client_reference_id",
    "currency",
    "customer",
    "customer_email",
    "success_url",
    customer_creation=Enum("always", "if_required"),
    invoice_creation=fields("enabled", invoice_data=fields("description", metadata=MAP)),
    line_items=[fields("price", "quantity", price_data=PRICE_DATA)],
    metadata=MAP,
    mode=Enum("payment", "setup", "subscription"),
    allow_promotion_codes=ANY,
    automatic_tax=AUTOMATIC_TAX,
    billing_address_collection=Enum("auto", "required"),
    customer_update=fields(
        address=Enum("auto", "never"), name=Enum("auto", "never"), shipping=Enum("auto", "never")
    ),
    tax_id_collection=fields("enabled", required=Enum("if_supported", "never")),
    allowed_payment_method_types=[ANY],
    payment_intent_data=fields(
        "description", metadata=MAP, setup_future_usage=Enum("off_session", "on_session")
    ),
    setup_intent_data=fields("description", metadata=MAP),
    subscription_data=fields(
        "description", "trial_period_days", billing_mode=BILLING_MODE, metadata=MAP
    ),
    ui_mode=Enum("elements", "embedded_page", "form", "hosted_page"),
)
SUBSCRIPTION_CREATE = fields(
    "cancel_at_period_end",
    "customer",
    "default_payment_method",
    "description",
    "trial_end",
    "trial_period_days",
    automatic_tax=AUTOMATIC_TAX,
    billing_mode=BILLING_MODE,
    items=[fields("price", "quantity", metadata=MAP)],
    metadata=MAP,
    payment_behavior=PAYMENT_BEHAVIOR,
    trial_settings=fields(
        end_behavior=fields(missing_payment_method=Enum("cancel", "create_invoice", "pause"))
    ),
)
PRORATION_BEHAVIOR = Enum("always_invoice", "create_prorations", "none")
BILLING_CYCLE_ANCHOR = fields(type=Enum("now", "unchanged"))
SUBSCRIPTION_UPDATE = fields(
    "cancel_at_period_end",
    "default_payment_method",
    "description",
    "trial_end",
    automatic_tax=AUTOMATIC_TAX,
    cancellation_details=fields("comment", "feedback"),
    items=[fields("id", "price", "quantity", "deleted", metadata=MAP)],
    metadata=MAP,
    payment_behavior=PAYMENT_BEHAVIOR,
    proration_behavior=PRORATION_BEHAVIOR,
    proration_date=ANY,
    billing_cycle_anchor=BILLING_CYCLE_ANCHOR,
)
# `subscription_details` of an invoice preview: the update it previews.
PREVIEW_SUBSCRIPTION = fields(
    "cancel_at_period_end",
    "proration_date",
    "trial_end",
    billing_cycle_anchor=BILLING_CYCLE_ANCHOR,
    items=[fields("id", "price", "quantity", "deleted", metadata=MAP)],
    metadata=MAP,
    proration_behavior=PRORATION_BEHAVIOR,
)
SUBSCRIPTION_STATUS = Enum(
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
INVOICE_STATUS = Enum("draft", "open", "paid", "uncollectible", "void")
METER_CREATE = fields(
    "display_name",
    "event_name",
    customer_mapping=fields("event_payload_key", type=Enum("by_id")),
    default_aggregation=fields(formula=Enum("count", "last", "sum")),
    value_settings=fields("event_payload_key"),
)

PORTAL_FEATURES = fields(
    customer_update=fields(
        "enabled",
        allowed_updates=[Enum("address", "email", "name", "phone", "shipping", "tax_id")],
    ),
    invoice_history=fields("enabled"),
    payment_method_update=fields("enabled", "payment_method_configuration"),
    subscription_cancel=fields(
        "enabled",
        cancellation_reason=fields(
            "enabled",
            options=[
                Enum(
                    "customer_service",
                    "low_quality",
                    "missing_features",
                    "other",
                    "switched_service",
                    "too_complex",
                    "too_expensive",
                    "unused",
                )
            ],
        ),
        mode=Enum("at_period_end", "immediately"),
        proration_behavior=PRORATION_BEHAVIOR,
    ),
    subscription_pause=fields("enabled"),
    subscription_update=fields(
        "enabled",
        billing_cycle_anchor=Enum("now", "unchanged"),
        default_allowed_updates=[Enum("price", "promotion_code", "quantity")],
        products=[fields("product", prices=[ANY])],
        proration_behavior=PRORATION_BEHAVIOR,
        schedule_at_period_end=fields(
            conditions=[fields(type=Enum("decreasing_item_amount", "shortening_interval"))]
        ),
        trial_update_behavior=Enum("continue_trial", "end_trial"),
    ),
)
PORTAL_CONFIGURATION = fields(
    "default_return_url",
    "name",
    business_profile=fields("headline", "privacy_policy_url", "terms_of_service_url"),
    features=PORTAL_FEATURES,
    login_page=fields("enabled"),
    metadata=MAP,
)
WEBHOOK_EVENTS = [Enum(*EVENT_TYPES)]

V2_METER_EVENT = fields("event_name", "identifier", "timestamp", payload=MAP)

NONE: dict[str, Spec] = {}

ALLOWED: dict[tuple[str, str], dict[str, Spec]] = {
    # Customers
    ("POST", "/v1/customers"): fields("test_clock", "payment_method", **CUSTOMER_FIELDS),
    ("GET", "/v1/customers/{id}"): NONE,
    ("POST", "/v1/customers/{id}"): CUSTOMER_FIELDS,
    ("DELETE", "/v1/customers/{id}"): NONE,
    ("GET", "/v1/customers"): fields("email", "test_clock", **LIST),
    ("GET", "/v1/customers/{id}/payment_methods"): fields("type", **LIST),
    ("GET", "/v1/customers/{id}/payment_methods/{pm}"): NONE,
    ("POST", "/v1/customers/{id}/tax_ids"): fields("value", type=Enum(*TAX_ID_TYPES)),
    ("GET", "/v1/customers/{id}/tax_ids"): LIST,
    ("GET", "/v1/customers/{id}/tax_ids/{tax}"): NONE,
    ("DELETE", "/v1/customers/{id}/tax_ids/{tax}"): NONE,
    ("POST", "/v1/customers/{id}/balance_transactions"): fields(
        "amount", "currency", "description", metadata=MAP
    ),
    ("GET", "/v1/customers/{id}/balance_transactions"): fields("invoice", **LIST),
    ("GET", "/v1/customers/{id}/balance_transactions/{txn}"): NONE,
    ("POST", "/v1/customers/{id}/balance_transactions/{txn}"): fields("description", metadata=MAP),
    # Products and prices
    ("POST", "/v1/products"): fields(
        "id",
        "name",
        "description",
        "unit_label",
        "statement_descriptor",
        "tax_code",
        "url",
        "active",
        metadata=MAP,
        default_price_data=DEFAULT_PRICE_DATA,
    ),
    ("GET", "/v1/products/{id}"): NONE,
    ("POST", "/v1/products/{id}"): fields(
        "name",
        "description",
        "unit_label",
        "statement_descriptor",
        "url",
        "active",
        "default_price",
        metadata=MAP,
    ),
    ("GET", "/v1/products"): fields("active", ids=[ANY], **LIST),
    ("POST", "/v1/prices"): PRICE_CREATE,
    ("GET", "/v1/prices/{id}"): NONE,
    ("POST", "/v1/prices/{id}"): fields(
        "active", "lookup_key", "nickname", "transfer_lookup_key", metadata=MAP
    ),
    ("GET", "/v1/prices"): fields(
        "active",
        "currency",
        "product",
        lookup_keys=[ANY],
        type=Enum("one_time", "recurring"),
        **LIST,
    ),
    # Coupons and promotion codes
    ("POST", "/v1/coupons"): fields(
        "amount_off",
        "currency",
        "id",
        "name",
        "percent_off",
        duration=Enum("forever", "once", "repeating"),
        metadata=MAP,
    ),
    ("GET", "/v1/coupons/{id}"): NONE,
    ("GET", "/v1/coupons"): LIST,
    ("POST", "/v1/promotion_codes"): fields(
        "active", "code", metadata=MAP, promotion=fields("coupon", type=Enum("coupon"))
    ),
    ("GET", "/v1/promotion_codes/{id}"): NONE,
    ("GET", "/v1/promotion_codes"): fields("active", "code", "coupon", **LIST),
    # Subscriptions
    ("POST", "/v1/subscriptions"): SUBSCRIPTION_CREATE,
    ("GET", "/v1/subscriptions/{id}"): NONE,
    ("POST", "/v1/subscriptions/{id}"): SUBSCRIPTION_UPDATE,
    ("DELETE", "/v1/subscriptions/{id}"): NONE,
    ("POST", "/v1/subscriptions/{id}/resume"): fields(
        billing_cycle_anchor=fields(type=Enum("now", "unchanged")),
        payment_behavior=Enum("resume_on_payment_attempt", "resume_on_payment_success"),
    ),
    ("GET", "/v1/subscriptions"): fields(
        "customer", "price", "test_clock", status=SUBSCRIPTION_STATUS, **LIST
    ),
    ("GET", "/v1/subscription_items"): fields("subscription", **LIST),
    ("GET", "/v1/subscription_items/{id}"): NONE,
    # Invoices
    ("POST", "/v1/invoices/create_preview"): fields(
        "customer",
        "schedule",
        "subscription",
        automatic_tax=AUTOMATIC_TAX,
        subscription_details=PREVIEW_SUBSCRIPTION,
    ),
    # Subscription schedules
    ("POST", "/v1/subscription_schedules"): fields("from_subscription", metadata=MAP),
    ("GET", "/v1/subscription_schedules/{id}"): NONE,
    ("POST", "/v1/subscription_schedules/{id}"): fields(
        end_behavior=Enum("cancel", "none", "release", "renew"),
        metadata=MAP,
        phases=[
            fields(
                "start_date",
                "end_date",
                duration=fields("interval_count", interval=INTERVAL),
                items=[fields("price", "quantity")],
                proration_behavior=PRORATION_BEHAVIOR,
            )
        ],
        proration_behavior=PRORATION_BEHAVIOR,
    ),
    ("POST", "/v1/subscription_schedules/{id}/release"): NONE,
    ("POST", "/v1/subscription_schedules/{id}/cancel"): NONE,
    ("GET", "/v1/subscription_schedules"): fields("customer", **LIST),
    ("GET", "/v1/invoices"): fields("customer", "subscription", status=INVOICE_STATUS, **LIST),
    ("GET", "/v1/invoices/{id}"): NONE,
    ("GET", "/v1/invoices/{id}/lines"): LIST,
    ("POST", "/v1/invoices/{id}/pay"): fields("payment_method"),
    # Payment methods and intents
    ("POST", "/v1/payment_methods"): fields(
        "type",
        billing_details=fields("email", "name", "phone", address=ADDRESS),
        card=fields("number", "exp_month", "exp_year", "cvc", "token"),
        sepa_debit=fields("iban"),
        us_bank_account=fields(
            "account_number",
            "routing_number",
            account_holder_type=Enum("company", "individual"),
            account_type=Enum("checking", "savings"),
        ),
    ),
    ("GET", "/v1/payment_methods/{id}"): NONE,
    ("POST", "/v1/payment_methods/{id}"): fields(
        metadata=MAP, card=fields("exp_month", "exp_year")
    ),
    ("POST", "/v1/payment_methods/{id}/attach"): fields("customer"),
    ("POST", "/v1/payment_methods/{id}/detach"): NONE,
    ("GET", "/v1/payment_methods"): fields("customer", "type", **LIST),
    ("POST", "/v1/payment_intents"): fields(
        "amount",
        "confirm",
        "currency",
        "customer",
        "description",
        "off_session",
        "payment_method",
        metadata=MAP,
    ),
    ("GET", "/v1/payment_intents/{id}"): NONE,
    ("GET", "/v1/payment_intents"): fields("customer", **LIST),
    ("GET", "/v1/setup_intents/{id}"): NONE,
    ("GET", "/v1/setup_intents"): fields("customer", **LIST),
    ("POST", "/v1/invoices/{id}/void"): NONE,
    ("POST", "/v1/invoices/{id}/mark_uncollectible"): NONE,
    # Charges, refunds, disputes
    ("GET", "/v1/charges/{id}"): NONE,
    ("GET", "/v1/charges"): fields("customer", "payment_intent", **LIST),
    ("POST", "/v1/refunds"): fields(
        "amount",
        "charge",
        "payment_intent",
        metadata=MAP,
        reason=Enum("duplicate", "fraudulent", "requested_by_customer"),
    ),
    ("GET", "/v1/refunds/{id}"): NONE,
    ("GET", "/v1/refunds"): fields("charge", "payment_intent", **LIST),
    ("GET", "/v1/disputes/{id}"): NONE,
    ("GET", "/v1/disputes"): fields("charge", "payment_intent", **LIST),
    # Credit notes
    ("POST", "/v1/credit_notes"): fields(
        "amount",
        "credit_amount",
        "invoice",
        "memo",
        "out_of_band_amount",
        "refund_amount",
        lines=[
            fields(
                "amount",
                "description",
                "invoice_line_item",
                "quantity",
                "unit_amount",
                metadata=MAP,
                type=Enum("custom_line_item", "invoice_line_item"),
            )
        ],
        metadata=MAP,
        reason=Enum("duplicate", "fraudulent", "order_change", "product_unsatisfactory"),
    ),
    ("GET", "/v1/credit_notes/{id}"): NONE,
    ("GET", "/v1/credit_notes/{id}/lines"): LIST,
    ("GET", "/v1/credit_notes"): fields("customer", "invoice", **LIST),
    # Checkout and the billing portal
    ("POST", "/v1/checkout/sessions"): CHECKOUT_CREATE,
    ("GET", "/v1/checkout/sessions/{id}"): NONE,
    ("GET", "/v1/checkout/sessions/{id}/line_items"): LIST,
    ("POST", "/v1/checkout/sessions/{id}/expire"): NONE,
    ("GET", "/v1/checkout/sessions"): fields(
        "customer",
        "payment_intent",
        "subscription",
        status=Enum("complete", "expired", "open"),
        **LIST,
    ),
    ("POST", "/v1/billing_portal/sessions"): fields("customer", "return_url"),
    ("POST", "/v1/billing_portal/configurations"): PORTAL_CONFIGURATION,
    ("GET", "/v1/billing_portal/configurations"): fields("active", "is_default", **LIST),
    ("GET", "/v1/billing_portal/configurations/{id}"): NONE,
    ("POST", "/v1/billing_portal/configurations/{id}"): fields("active", **PORTAL_CONFIGURATION),
    # The account and its settings
    ("GET", "/v1/account"): NONE,
    ("GET", "/v1/payment_method_configurations"): fields("active", **LIST),
    ("GET", "/v1/payment_method_configurations/{id}"): NONE,
    ("POST", "/v1/webhook_endpoints"): fields(
        "description",
        "url",
        api_version=Enum(*API_VERSIONS),
        enabled_events=WEBHOOK_EVENTS,
        metadata=MAP,
    ),
    ("GET", "/v1/webhook_endpoints"): LIST,
    ("GET", "/v1/webhook_endpoints/{id}"): NONE,
    ("POST", "/v1/webhook_endpoints/{id}"): fields(
        "description", "disabled", "url", enabled_events=WEBHOOK_EVENTS, metadata=MAP
    ),
    ("DELETE", "/v1/webhook_endpoints/{id}"): NONE,
    # Events
    ("GET", "/v1/events"): fields(
        "type", types=[ANY], created=Range("gt", "gte", "lt", "lte"), **LIST
    ),
    ("GET", "/v1/events/{id}"): NONE,
    # Billing meters
    ("POST", "/v1/billing/meters"): METER_CREATE,
    ("GET", "/v1/billing/meters"): fields(status=Enum("active", "inactive"), **LIST),
    ("GET", "/v1/billing/meters/{id}"): NONE,
    ("GET", "/v1/billing/meters/{id}/event_summaries"): fields(
        "customer", "start_time", "end_time", **LIST
    ),
    ("POST", "/v1/billing/meter_events"): fields(
        "event_name", "identifier", "timestamp", payload=MAP
    ),
    # v2: meter event sessions and the stream, v2 meter events, thin events
    ("POST", "/v2/billing/meter_event_session"): NONE,
    ("POST", "/v2/billing/meter_event_stream"): fields(events=[V2_METER_EVENT]),
    ("POST", "/v2/billing/meter_events"): V2_METER_EVENT,
    ("GET", "/v2/core/events/{id}"): NONE,
    # Test clocks
    ("POST", "/v1/test_helpers/test_clocks"): fields("frozen_time", "name"),
    ("GET", "/v1/test_helpers/test_clocks/{id}"): NONE,
    ("GET", "/v1/test_helpers/test_clocks"): LIST,
    ("DELETE", "/v1/test_helpers/test_clocks/{id}"): NONE,
    ("POST", "/v1/test_helpers/test_clocks/{id}/advance"): fields("frozen_time"),
}
