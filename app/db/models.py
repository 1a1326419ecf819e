"""Every model, imported in one place so Alembic and the metadata see the whole schema."""

from app.accounts.models import User
from app.admin.models import AuditLog
from app.apikeys.models import ApiKey
from app.billing.models import Invoice, PaymentMethod
from app.customers.models import Customer, Subscription
from app.db.base import Base
from app.metering.models import (
    CreditGrant,
    CreditLedgerEntry,
    Reservation,
    UsageEvent,
    UsageTotal,
)
from app.metering.outbox import StripeOutboxMessage
from app.notifications.models import EmailOutboxMessage
from app.stripe_sync.models import StripeEvent

__all__ = [
    "ApiKey",
    "AuditLog",
    "Base",
    "CreditGrant",
    "CreditLedgerEntry",
    "Customer",
    "EmailOutboxMessage",
    "Invoice",
    "PaymentMethod",
    "Reservation",
    "StripeEvent",
    "StripeOutboxMessage",
    "Subscription",
    "UsageEvent",
    "UsageTotal",
    "User",
]
