"""Plans with an overage price bill usage beyond included + credits instead of refusing it."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select, update

from app.catalog.loader import CatalogError, parse_catalog
from app.customers.models import Customer, Subscription
from app.customers.service import CustomerInput, CustomerService
from app.lib.errors import InsufficientBalance
from app.metering.ops import CustomerRef, GrantCredits, RecordUsage, fingerprint
from app.metering.outbox import StripeOutboxMessage
from app.metering.service import UsageApi
from app.metering.writer import UsageWriter, apply_batch

CATALOG = parse_catalog(
    {
        "meters": {"calls": {"name": "Calls", "aggregation": "sum", "field_name": "n"}},
        "plans": {
            "free": {"name": "Free", "default": True, "prices": {"monthly": {"amount": 0}}},
            "scale": {
                "name": "Scale",
                "prices": {"monthly": {"amount": 1000}},
                "quotas": {"calls": {"included": 10, "reset": "billing_period", "overage": 3}},
            },
        },
    }
)
REF = CustomerRef(external_customer_id="ovr")


def _use(tx: str, n: int) -> RecordUsage:
    return RecordUsage(REF, "calls", tx, n, None, {"n": n}, fingerprint({"n": n}))


async def _customer(
    session, stripe_id: str | None, subscription_id: str | None = "sub_1", external_id: str = "ovr"
) -> None:
    await CustomerService(session, CATALOG).upsert(
        CustomerInput(external_id=external_id, plan="scale")
    )
    await session.execute(
        update(Customer)
        .where(Customer.external_id == external_id)
        .values(stripe_customer_id=stripe_id)
    )
    await session.execute(
        update(Subscription)
        .where(Subscription.external_id == external_id)
        .values(stripe_subscription_id=subscription_id, status="active")
    )
    await session.commit()


async def test_usage_beyond_quota_and_credits_is_billed_once(engine, session):
    await _customer(session, "cus_stripe_1")
    grant = GrantCredits(REF, "calls", 4, "api", "", "g1", None, fingerprint({"g": 1}))
    outcomes = await apply_batch(engine, CATALOG, [grant, _use("a", 12), _use("b", 5)], "u")
    assert [error for _, error in outcomes] == [None, None, None]
    outcomes = await apply_batch(engine, CATALOG, [_use("b", 5)], "u")  # a retry
    assert outcomes[0][1] is None and outcomes[0][0].replayed
    rows = (
        await session.scalars(select(StripeOutboxMessage).order_by(StripeOutboxMessage.id))
    ).all()
    # 10 included + 4 credits: "a" (12) takes the quota and 2 credits; "b" (5) the last 2
    # credits, and 3 are billed as overage. The retry of "b" bills nothing again.
    assert [(r.payload["value"], r.payload["stripe_customer_id"]) for r in rows] == [
        (3, "cus_stripe_1")
    ]
    assert rows[0].payload["event_name"] == "bp_calls"
    digest = hashlib.sha256(b"ovr\0b").hexdigest()[:64]
    assert rows[0].idempotency_key == rows[0].payload["identifier"] == f"calls:{digest}"


@pytest.mark.parametrize(
    ("stripe_id", "subscription_id"),
    [(None, None), ("cus_stripe_1", None)],
    ids=["no Stripe customer", "no Stripe subscription (a plan set directly)"],
)
async def test_without_a_stripe_subscription_the_quota_is_a_hard_limit(
    engine, session, stripe_id, subscription_id
):
    await _customer(session, stripe_id, subscription_id)
    outcomes = await apply_batch(engine, CATALOG, [_use("a", 10), _use("b", 1)], "u")
    assert outcomes[0][1] is None
    assert isinstance(outcomes[1][1], InsufficientBalance)
    assert (await session.scalars(select(StripeOutboxMessage))).all() == []


async def test_identifiers_fit_stripes_limit_whatever_the_ids(engine, session):
    long_customer, long_tx = "c" * 255, "t" * 255
    await _customer(session, "cus_stripe_2", external_id=long_customer)
    ref = CustomerRef(external_customer_id=long_customer)
    over = RecordUsage(ref, "calls", long_tx, 11, None, {"n": 11}, fingerprint({"n": 11}))
    [(result, error)] = await apply_batch(engine, CATALOG, [over], "u")
    assert error is None and result is not None
    [row] = (await session.scalars(select(StripeOutboxMessage))).all()
    assert len(row.payload["identifier"]) <= 100 and row.payload["value"] == 1


def test_overage_needs_a_paid_limited_quota():
    bad = {
        "meters": {"calls": {"name": "Calls"}},
        "plans": {
            "free": {
                "name": "Free",
                "default": True,
                "prices": {"monthly": {"amount": 0}},
                "quotas": {"calls": {"included": 5, "overage": 1}},
            }
        },
    }
    with pytest.raises(CatalogError, match="only a paid plan"):
        parse_catalog(bad)


@pytest.mark.parametrize(
    ("subscription_id", "billed"),
    [("sub_1", True), (None, False)],
    ids=["billed overage", "hard limit"],
)
async def test_check_answers_what_the_write_then_does(engine, session, subscription_id, billed):
    await _customer(session, "cus_stripe_1", subscription_id)
    writer = UsageWriter(engine, CATALOG, "u")
    try:
        usage = UsageApi(CATALOG, writer, "u")
        allowed, balance = await usage.check("ovr", "calls", 12)
        assert (allowed, balance.available) == (billed, 10)
        outcomes = await apply_batch(engine, CATALOG, [_use("a", 12)], "u")
        assert (outcomes[0][1] is None) is allowed
    finally:
        await writer.close()
