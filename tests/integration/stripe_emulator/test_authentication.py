"""3-D Secure test cards: payments wait for authentication (requires_action), updates wait as a
pending_update, and the hosted pages' authentication step completes or fails them."""

from __future__ import annotations

import time

import httpx
import pytest
import stripe

from tests.integration.stripe_emulator.conftest import Receiver
from tests.integration.stripe_emulator.helpers import customer_with_card, monthly_price, unique

ALWAYS = "4000 0027 6000 3184"
ON_SETUP = "4000 0025 0000 3155"
SUCCESS = "https://portal.test/billing/success?session={CHECKOUT_SESSION_ID}"


def _on_card(
    client: stripe.StripeClient, card: str
) -> tuple[str, stripe.Customer, stripe.Subscription]:
    """A 30.00 subscription paid by a visa, then given `card` as its default."""
    clock = client.v1.test_helpers.test_clocks.create(
        params={"frozen_time": int(time.time()), "name": unique("clock")}
    )
    customer, _ = customer_with_card(client, test_clock=clock.id)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": monthly_price(client, 3000).id}]}
    )
    pm = client.v1.payment_methods.attach(card, params={"customer": customer.id})
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )
    return clock.id, customer, sub


def _upgrade(client: stripe.StripeClient, sub: stripe.Subscription, **params: object) -> dict:
    return {
        "items": [{"id": sub["items"].data[0].id, "price": monthly_price(client, 9000).id}],
        "proration_behavior": "always_invoice",
        **params,
    }


def test_error_if_incomplete_refuses_an_upgrade_needing_authentication(
    client: stripe.StripeClient,
) -> None:
    _clock, customer, sub = _on_card(client, "pm_card_authenticationRequired")
    with pytest.raises(stripe.CardError) as raised:
        client.v1.subscriptions.update(
            sub.id, params=_upgrade(client, sub, payment_behavior="error_if_incomplete")
        )
    assert raised.value.http_status == 402
    assert raised.value.code == "subscription_payment_intent_requires_action"
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after["items"].data[0].price.id == sub["items"].data[0].price.id
    assert after.latest_invoice == sub.latest_invoice
    assert len(client.v1.invoices.list(params={"customer": customer.id}).data) == 1


@pytest.mark.parametrize("outcome", ["complete", "fail"])
def test_pending_update_applies_only_once_authenticated(
    client: stripe.StripeClient, receiver: Receiver, outcome: str
) -> None:
    _clock, _customer, sub = _on_card(client, "pm_card_authenticationRequired")
    params = _upgrade(client, sub, payment_behavior="pending_if_incomplete")
    new_price = params["items"][0]["price"]  # type: ignore[index]
    updated = client.v1.subscriptions.update(
        sub.id, params={**params, "expand": ["latest_invoice.payments.data.payment.payment_intent"]}
    )
    old_price = sub["items"].data[0].price.id
    assert updated["items"].data[0].price.id == old_price and updated.status == "active"
    pending = updated.pending_update
    assert [i.price.id for i in pending.subscription_items] == [new_price]
    assert pending.expires_at > int(time.time()) + 22 * 3600
    invoice = updated.latest_invoice
    assert invoice.status == "open" and invoice.amount_remaining > 0
    pi = invoice.payments.data[0].payment.payment_intent
    assert pi.status == "requires_action" and pi.next_action.type == "use_stripe_sdk"
    receiver.wait_for_event("invoice.payment_action_required", lambda o: o["id"] == invoice.id)

    page = httpx.get(invoice.hosted_invoice_url)
    assert 'data-testid="authentication-complete"' in page.text
    assert 'data-testid="authentication-fail"' in page.text
    answer = httpx.post(
        f"{invoice.hosted_invoice_url}/authenticate",
        data={"action": outcome},
        follow_redirects=True,
    )
    assert answer.status_code == 200
    after = client.v1.subscriptions.retrieve(sub.id)
    paid = client.v1.invoices.retrieve(invoice.id)
    if outcome == "complete":
        assert paid.status == "paid" and paid.amount_paid == invoice.amount_due
        assert after["items"].data[0].price.id == new_price and after.pending_update is None
        receiver.wait_for_event("invoice.paid", lambda o: o["id"] == invoice.id)
        receiver.wait_for_event(
            "customer.subscription.updated",
            lambda o: o["id"] == sub.id and o["items"]["data"][0]["price"]["id"] == new_price,
        )
    else:
        assert paid.status == "open"
        assert after["items"].data[0].price.id == old_price and after.pending_update
        failed = client.v1.payment_intents.retrieve(pi.id)
        assert failed.last_payment_error.code == "payment_intent_authentication_failure"
        assert 'data-testid="invoice-error"' in answer.text
        assert 'data-testid="authentication-complete"' not in answer.text
        receiver.wait_for_event("invoice.payment_failed", lambda o: o["id"] == invoice.id)


def test_pending_update_expires_after_23_hours(client: stripe.StripeClient) -> None:
    clock_id, _customer, sub = _on_card(client, "pm_card_authenticationRequired")
    updated = client.v1.subscriptions.update(
        sub.id, params=_upgrade(client, sub, payment_behavior="pending_if_incomplete")
    )
    client.v1.test_helpers.test_clocks.advance(
        clock_id, params={"frozen_time": updated.pending_update.expires_at + 1}
    )
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.pending_update is None
    assert after["items"].data[0].price.id == sub["items"].data[0].price.id
    assert client.v1.invoices.retrieve(updated.latest_invoice).status == "void"


def test_a_pending_update_takes_only_the_parameters_stripe_allows(
    client: stripe.StripeClient,
) -> None:
    _clock, customer, sub = _on_card(client, "pm_card_authenticationRequired")
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.subscriptions.update(
            sub.id,
            params=_upgrade(
                client, sub, payment_behavior="pending_if_incomplete", cancel_at_period_end=False
            ),
        )
    assert raised.value.http_status == 400
    assert raised.value.param == "cancel_at_period_end"
    assert len(client.v1.invoices.list(params={"customer": customer.id}).data) == 1
    # `metadata` is one of them (since 2026-05-27.dahlia).
    updated = client.v1.subscriptions.update(
        sub.id,
        params=_upgrade(
            client, sub, payment_behavior="pending_if_incomplete", metadata={"plan": "big"}
        ),
    )
    assert updated.pending_update is not None


def test_a_trial_ended_by_a_pending_update_goes_on_until_paid(
    client: stripe.StripeClient,
) -> None:
    customer, _ = customer_with_card(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": monthly_price(client, 3000).id}],
            "trial_period_days": 14,
        }
    )
    pm = client.v1.payment_methods.attach(
        "pm_card_authenticationRequired", params={"customer": customer.id}
    )
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )
    price = monthly_price(client, 9000).id
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "price": price}],
            "trial_end": "now",
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
        },
    )
    assert updated.status == "trialing"
    assert updated["items"].data[0].price.id == sub["items"].data[0].price.id
    assert updated.pending_update is not None and updated.pending_update.trial_end
    invoice = client.v1.invoices.retrieve(updated.latest_invoice)
    assert (invoice.status, invoice.amount_due) == ("open", 9000)

    client.v1.invoices.pay(invoice.id, params={"payment_method": "pm_card_visa"})
    after = client.v1.subscriptions.retrieve(sub.id)
    assert (after.status, after.pending_update) == ("active", None)
    assert after["items"].data[0].price.id == price
    assert after.trial_end == updated.pending_update.trial_end


def test_renewals_on_a_card_needing_authentication(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    clock_id, _customer, sub = _on_card(client, "pm_card_authenticationRequired")
    end = sub["items"].data[0].current_period_end
    client.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": end + 60})
    renewed = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert renewed.latest_invoice.status == "open"
    receiver.wait_for_event(
        "invoice.payment_action_required", lambda o: o["id"] == renewed.latest_invoice.id
    )
    with pytest.raises(stripe.CardError) as raised:
        client.v1.invoices.pay(renewed.latest_invoice.id)
    assert raised.value.code == "invoice_payment_intent_requires_action"


def test_a_card_set_up_in_checkout_charges_off_session(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": f"{unique('buyer')}@example.com"})
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": monthly_price(client, 2500).id, "quantity": 1}],
            "success_url": SUCCESS,
        }
    )
    form = {"card_number": ON_SETUP, "exp_date": "12 / 34", "cvc": "123"}
    step = httpx.post(session.url, data=form)
    assert step.status_code == 200 and 'data-testid="authentication-complete"' in step.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    failed = httpx.post(f"{session.url}/authenticate", data={"action": "fail"})
    assert failed.status_code == 402 and "unable to authenticate" in failed.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"

    httpx.post(session.url, data=form)
    done = httpx.post(f"{session.url}/authenticate", data={"action": "complete"})
    assert done.status_code == 303
    completed = client.v1.checkout.sessions.retrieve(session.id)
    assert completed.status == "complete" and completed.payment_status == "paid"
    # Saved through an authenticated Checkout, 3155 now pays off-session.
    sub = client.v1.subscriptions.retrieve(completed.subscription)
    changed = client.v1.subscriptions.update(
        sub.id,
        params={**_upgrade(client, sub), "payment_behavior": "error_if_incomplete"},
    )
    assert client.v1.invoices.retrieve(changed.latest_invoice).status == "paid"


def test_on_setup_card_attached_by_api_needs_authentication_off_session(
    client: stripe.StripeClient,
) -> None:
    _clock, _customer, sub = _on_card(client, "pm_card_authenticationRequiredOnSetup")
    with pytest.raises(stripe.CardError) as raised:
        client.v1.subscriptions.update(
            sub.id, params=_upgrade(client, sub, payment_behavior="error_if_incomplete")
        )
    assert raised.value.code == "subscription_payment_intent_requires_action"
