"""Every model, imported in one place so Alembic and the metadata see the whole schema."""

from app.accounts.models import AccountToken, RecoveryCode, TwoFactor, User, UserSession
from app.admin.models import AuditLog
from app.apikeys.models import ApiKey
from app.billing.models import (
    AutoTopUp,
    AutoTopUpPurchase,
    BillingDetails,
    CustomerTaxId,
    Invoice,
    PaymentMethod,
)
from app.customers.models import Customer, Membership, Subscription
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
from app.organizations.models import Invitation
from app.stripe_sync.models import StripeEvent

__all__ = [
    "AccountToken",
    "ApiKey",
    "AuditLog",
    "AutoTopUp",
    "AutoTopUpPurchase",
    "Base",
    "BillingDetails",
    "CreditGrant",
    "CreditLedgerEntry",
    "Customer",
    "CustomerTaxId",
    "EmailOutboxMessage",
    "Invitation",
    "Invoice",
    "Membership",
    "PaymentMethod",
    "RecoveryCode",
    "Reservation",
    "StripeEvent",
    "StripeOutboxMessage",
    "Subscription",
    "TwoFactor",
    "UsageEvent",
    "UsageTotal",
    "User",
    "UserSession",
]
