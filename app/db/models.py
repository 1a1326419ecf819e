"""Every model, imported in one place so Alembic and the metadata see the whole schema."""

from app.accounts.models import User
from app.customers.models import Customer, Subscription
from app.db.base import Base

__all__ = ["Base", "Customer", "Subscription", "User"]
