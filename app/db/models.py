"""Every model, imported in one place so Alembic and the metadata see the whole schema."""

from app.accounts.models import User
from app.apikeys.models import ApiKey
from app.customers.models import Customer, Subscription
from app.db.base import Base
from app.metering.models import (
    CreditGrant,
    CreditLedgerEntry,
    Reservation,
    UsageEvent,
    UsageTotal,
)

__all__ = [
    "ApiKey",
    "Base",
    "CreditGrant",
    "CreditLedgerEntry",
    "Customer",
    "Reservation",
    "Subscription",
    "UsageEvent",
    "UsageTotal",
    "User",
]
