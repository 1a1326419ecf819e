"""The success page says "done" for a credit pack only once the credits are granted."""

from __future__ import annotations

from app.customers.service import CustomerInput, CustomerService
from app.lib.clock import utcnow
from app.metering.models import CreditGrant
from app.stripe_sync.models import StripeEvent


async def test_a_completed_but_unpaid_pack_checkout_is_still_processing(services, session, catalog):
    customer, _ = await CustomerService(session, catalog).upsert(CustomerInput(external_id="ach"))
    customer.stripe_customer_id = "cus_ach"
    session.add(
        StripeEvent(
            stripe_event_id="evt_ach_1",
            type="checkout.session.completed",
            object_id="cs_ach_1",
            stripe_customer_id="cus_ach",
            stripe_created=1,
            payload={
                "data": {
                    "object": {
                        "id": "cs_ach_1",
                        "mode": "payment",
                        "payment_status": "unpaid",
                        "metadata": {"pack": "ai_100"},
                    }
                }
            },
            status="ignored",
        )
    )
    await session.commit()
    status = await services.billing.checkout_status(customer, "cs_ach_1", fetch=False)
    assert status.state == "processing" and "clears" in (status.detail or "")

    session.add(
        CreditGrant(
            public_id="g-ach",
            customer_id=customer.id,
            meter_code="ai_requests",
            amount=100,
            remaining=100,
            source="purchase",
            reason="",
            transaction_id="cs_ach_1",
            fingerprint="x",
            created_at=utcnow(),
        )
    )
    await session.commit()
    status = await services.billing.checkout_status(customer, "cs_ach_1", fetch=False)
    assert status.state == "done" and status.credits == 100
