"""A refunded or disputed credit pack: its unused credits are revoked, with a ledger entry,
and given back when the dispute is won.

What is revoked is decided from Stripe's current state of the pack's payment, never from the
event that arrived: the charge's `amount_refunded`, and its disputes that are open or lost.
That share of the pack's credits is the grant's revocation *target*
(`MeteringService.revoke_credits`), which takes only credits still unused and never goes
below zero; a lower target (a dispute won) gives back what was taken. So a refund, a dispute
and its close, delivered twice or in any order, end in the same credits.
"""

from __future__ import annotations

from app.billing.stripe_objects import Json, ref_id
from app.catalog.models import Catalog
from app.customers.models import Customer
from app.lib.errors import NotFound
from app.metering.service import MeteringService
from app.stripe.gateway import StripeGateway
from app.stripe.objects import Charge, CheckoutSession

# A dispute in these states took no money back, or gave it back (won).
_SETTLED_FOR_US = frozenset({"won", "warning_closed", "prevented"})


def revoked_share(pack_credits: int, charge: Charge, disputes: list[Json]) -> tuple[int, str]:
    """How many of the pack's credits the charge's refunds and open or lost disputes take
    back (rounded up), and why: `dispute` when a dispute is part of it, else `refund`."""
    amount = int(charge.get("amount") or 0)
    if amount <= 0:
        return 0, "refund"
    refunded = int(charge.get("amount_refunded") or 0)
    disputed = sum(
        int(d.get("amount") or 0) for d in disputes if d.get("status") not in _SETTLED_FOR_US
    )
    taken = min(amount, refunded + disputed)
    return -(-pack_credits * taken // amount), "dispute" if disputed else "refund"


class CreditReversals:
    def __init__(
        self, catalog: Catalog, gateway: StripeGateway, metering: MeteringService | None
    ) -> None:
        self.catalog = catalog
        self.gateway = gateway
        self.metering = metering

    async def pack_session(self, charge: Charge) -> CheckoutSession | None:
        """The credit pack's Checkout Session this charge paid, if it paid one."""
        intent_id = ref_id(charge.get("payment_intent"))
        if intent_id is None:
            return None
        sessions = await self.gateway.checkout_sessions_of_payment(intent_id)
        found = next(
            (s for s in sessions if (s.get("metadata") or {}).get("kind") == "credit_pack"), None
        )
        if found is not None or sessions:
            return found
        # Auto top-up pays with a PaymentIntent of its own (app/stripe_sync/auto_top_up.py),
        # whose credits were granted under its purchase key: read as a pack's session.
        intent = await self.gateway.retrieve_payment_intent(intent_id)
        metadata = intent.get("metadata") or {}
        if metadata.get("kind") != "auto_top_up" or not metadata.get("purchase"):
            return None
        return {
            "id": metadata["purchase"],
            "customer": intent.get("customer"),
            "metadata": {
                "kind": "credit_pack",
                "pack": metadata.get("pack", ""),
                "customer_public_id": metadata.get("customer_public_id", ""),
            },
        }

    async def disputes(self, charge: Charge) -> list[Json]:
        if not charge.get("disputed"):
            return []
        return await self.gateway.charge_disputes(charge["id"])

    async def charge_of(self, cs: CheckoutSession) -> Charge | None:
        """The charge that paid a Checkout Session (its PaymentIntent's latest)."""
        intent_id = ref_id(cs.get("payment_intent"))
        if intent_id is None:
            return None
        intent = await self.gateway.retrieve_payment_intent(intent_id)
        charge = intent.get("latest_charge")
        return charge if isinstance(charge, dict) else None

    async def apply(
        self, customer: Customer, cs: CheckoutSession, charge: Charge, disputes: list[Json]
    ) -> str:
        """Make the pack's revoked credits match the charge's refunds and disputes. The
        metering writer commits on its own: the caller ended its transaction first."""
        pack = self.catalog.credit_packs.get(str((cs.get("metadata") or {}).get("pack")))
        if pack is None:
            return "ignored: unknown credit pack"
        if self.metering is None:
            raise RuntimeError("credits need the metering service")
        target, kind = revoked_share(pack.credits, charge, disputes)
        try:
            result = await self.metering.revoke_credits(
                customer.external_id,
                pack.meter_code,
                grant_transaction_id=str(cs["id"]),
                revoked=target,
                kind=kind,
            )
        except NotFound as exc:
            if exc.code != "grant_not_found":
                raise
            # Not granted yet (events out of order): the grant asks again (apply_checkout_session).
            return f"ignored: no credits granted for {cs['id']} yet"
        if result.changed > 0:
            return f"credits: {result.changed} {pack.meter_code} revoked ({kind})"
        if result.changed < 0:
            return f"credits: {-result.changed} {pack.meter_code} restored"
        return f"credits: {result.revoked} {pack.meter_code} revoked, unchanged"
