"""How the Stripe event ledger's services are built (see app/composition.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.mirror import StripeMirror
from app.notifications.service import NotificationService
from app.stripe.gateway import StripeGateway
from app.stripe_sync.repository import StripeEventRepository
from app.stripe_sync.service import StripeEventService


def provide_checkout_ledger(db_session: AsyncSession) -> StripeEventRepository:
    """What billing asks of the event ledger while it waits for Checkout (CheckoutLedger)."""
    return StripeEventRepository(db_session)


def provide_stripe_event_service(
    db_session: AsyncSession,
    stripe_gateway: StripeGateway,
    stripe_mirror: StripeMirror,
    notification_service: NotificationService,
) -> StripeEventService:
    return StripeEventService(db_session, stripe_gateway, stripe_mirror, notification_service)
