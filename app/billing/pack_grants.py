"""A credit pack's credits, granted: one path for a pack bought in Checkout (the webhook's
`StripeMirror`) and one bought by auto top-up (app/stripe_sync/auto_top_up.py), so both make
the same grant and ledger entry."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.catalog.models import CreditPack
from app.metering.ops import GrantResult
from app.metering.service import MeteringService


async def grant_pack(
    metering: MeteringService,
    customer_external_id: str,
    pack: CreditPack,
    *,
    transaction_id: str,
    bought_at: datetime,
    reason: str,
) -> GrantResult:
    """Grant `pack`'s credits once per `transaction_id` (a replay finds the first grant).
    `bought_at` comes from the purchase, not the clock, so a replay asks for the same grant.
    The metering writer commits on its own: the caller ends its transaction first."""
    expires_at = (
        bought_at + timedelta(days=pack.expires_after_days) if pack.expires_after_days else None
    )
    return await metering.grant_credits(
        customer_external_id,
        pack.meter_code,
        pack.credits,
        reason=reason,
        transaction_id=transaction_id,
        expires_at=expires_at,
        source="purchase",
    )
