"""Payment methods other than cards through the SDK: SEPA Direct Debit, US bank accounts and
Link are created, attached, listed, made the default, charged for a subscription, detached,
and saved by the hosted Checkout page in setup and subscription mode."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import stripe

from tests.integration.stripe_emulator.conftest import Receiver
from tests.integration.stripe_emulator.helpers import monthly_price, unique
from tests.integration.stripe_emulator.signed import signed_event

IBAN = "DE89370400440532013000"


def _sdk_fields(cls: type) -> set[str]:
    """The attributes the SDK's resource class declares (its annotations)."""
    return set(cls.__annotations__)


def _sepa(client: stripe.StripeClient, iban: str = IBAN) -> stripe.PaymentMethod:
    return client.v1.payment_methods.create(
        params={
            "type": "sepa_debit",
            "sepa_debit": {"iban": iban},
            "billing_details": {"name": "Jenny Rosen", "email": "jenny@example.com"},
        }
    )


def _us_bank(client: stripe.StripeClient, account: str = "000123456789") -> stripe.PaymentMethod:
    return client.v1.payment_methods.create(
        params={
            "type": "us_bank_account",
            "us_bank_account": {
                "routing_number": "110000000",
                "account_number": account,
                "account_holder_type": "individual",
                "account_type": "checking",
            },
            "billing_details": {"name": "Jenny Rosen"},
        }
    )


def _link(client: stripe.StripeClient) -> stripe.PaymentMethod:
    return client.v1.payment_methods.create(
        params={"type": "link", "billing_details": {"email": "jenny@example.com"}}
    )


def test_each_type_has_the_sdk_shape(client: stripe.StripeClient) -> None:
    sepa = _sepa(client)
    assert sepa.type == "sepa_debit" and sepa.object == "payment_method"
    assert set(sepa.sepa_debit.to_dict()) == _sdk_fields(stripe.PaymentMethod.SepaDebit)
    assert sepa.sepa_debit.last4 == "3000" and sepa.sepa_debit.country == "DE"
    assert sepa.sepa_debit.bank_code == "37040044"
    assert sepa.billing_details.name == "Jenny Rosen"
    assert sepa.billing_details.email == "jenny@example.com"
    assert "card" not in sepa.to_dict() and sepa.customer is None

    bank = _us_bank(client)
    assert set(bank.us_bank_account.to_dict()) == _sdk_fields(stripe.PaymentMethod.UsBankAccount)
    account = bank.us_bank_account
    assert (account.bank_name, account.last4, account.routing_number) == (
        "STRIPE TEST BANK",
        "6789",
        "110000000",
    )
    assert account.account_type == "checking" and account.account_holder_type == "individual"
    assert account.networks.supported == ["ach"]

    link = _link(client)
    assert set(link.link.to_dict()) == _sdk_fields(stripe.PaymentMethod.Link)
    assert link.link.email == "jenny@example.com"
    # Retrieved again, the same shape.
    again = client.v1.payment_methods.retrieve(sepa.id)
    assert again.sepa_debit.fingerprint == sepa.sepa_debit.fingerprint


def test_bad_input_is_refused_as_stripe_does(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        _sepa(client, "DE00 0000 0000 0000 0000 00")
    assert exc.value.code == "invalid_bank_account_iban" and exc.value.param == "sepa_debit[iban]"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_methods.create(params={"type": "sepa_debit"})
    assert exc.value.code == "parameter_missing" and exc.value.param == "sepa_debit"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_methods.create(
            params={
                "type": "us_bank_account",
                "us_bank_account": {"routing_number": "123456789", "account_number": "0001234"},
                "billing_details": {"name": "Jenny Rosen"},
            }
        )
    assert exc.value.param == "us_bank_account[routing_number]"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_methods.create(
            params={
                "type": "us_bank_account",
                "us_bank_account": {"routing_number": "110000000", "account_number": "0001234"},
            }
        )
    assert exc.value.code == "parameter_missing" and exc.value.param == "billing_details[name]"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_methods.create(params={"type": "link"})
    assert exc.value.param == "billing_details[email]"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_methods.create(params={"type": "paypal"})
    assert exc.value.param == "type"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_methods.create(
            params={"type": "sepa_debit", "sepa_debit": {"iban": IBAN, "bic": "X"}}  # type: ignore[typeddict-unknown-key]
        )
    assert exc.value.code == "parameter_unknown" and exc.value.param == "sepa_debit[bic]"


def test_attach_list_default_charge_detach(client: stripe.StripeClient, receiver: Receiver) -> None:
    customer = client.v1.customers.create(params={"email": f"{unique('pm')}@example.com"})
    card = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    sepa = client.v1.payment_methods.attach(_sepa(client).id, params={"customer": customer.id})
    bank = client.v1.payment_methods.attach(_us_bank(client).id, params={"customer": customer.id})
    link = client.v1.payment_methods.attach(_link(client).id, params={"customer": customer.id})
    assert sepa.customer == customer.id
    signed_event(receiver, "payment_method.attached", lambda o: o["id"] == sepa.id)

    everything = client.v1.customers.payment_methods.list(customer.id)
    assert {pm.id for pm in everything.data} == {card.id, sepa.id, bank.id, link.id}
    only_sepa = client.v1.customers.payment_methods.list(customer.id, {"type": "sepa_debit"})
    assert [pm.id for pm in only_sepa.data] == [sepa.id]
    by_filter = client.v1.payment_methods.list({"customer": customer.id, "type": "us_bank_account"})
    assert [pm.id for pm in by_filter.data] == [bank.id]
    unfiltered = client.v1.payment_methods.list({"customer": customer.id})
    assert len(unfiltered.data) == 4

    # The default payment method, charged for a subscription: it succeeds at once.
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": sepa.id}}
    )
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": monthly_price(client, 1500).id}],
            "expand": ["latest_invoice"],
        }
    )
    assert sub.status == "active"
    invoice = client.v1.invoices.retrieve(str(sub.latest_invoice.id))
    assert invoice.status == "paid"
    intent_id = invoice.payments.data[0].payment.payment_intent
    intent = client.v1.payment_intents.retrieve(str(intent_id))
    assert intent.payment_method == sepa.id and intent.payment_method_types == ["sepa_debit"]
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    details = charge.payment_method_details
    assert details.type == "sepa_debit" and details.sepa_debit.last4 == "3000"
    assert set(details.sepa_debit.to_dict()) == _sdk_fields(
        stripe.Charge.PaymentMethodDetails.SepaDebit
    )

    # A subscription's own default: the US bank account, then Link.
    for pm in (bank, link):
        updated = client.v1.subscriptions.update(sub.id, params={"default_payment_method": pm.id})
        assert updated.default_payment_method == pm.id

    client.v1.payment_methods.detach(sepa.id)
    assert client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method is None
    left = client.v1.customers.payment_methods.list(customer.id)
    assert {pm.id for pm in left.data} == {card.id, bank.id, link.id}
    signed_event(receiver, "payment_method.detached", lambda o: o["id"] == sepa.id)


def _session(client: stripe.StripeClient, mode: str, types: list[str], **params: Any) -> Any:
    customer = client.v1.customers.create(params={"email": f"{unique('co')}@example.com"})
    return client.v1.checkout.sessions.create(
        params={
            "mode": mode,  # type: ignore[typeddict-item]
            "customer": customer.id,
            "allowed_payment_method_types": types,  # type: ignore[typeddict-item]
            "success_url": "http://example.com/ok?session_id={CHECKOUT_SESSION_ID}",
            **params,
        }
    )


def _post(session: Any, data: dict[str, str]) -> httpx.Response:
    return httpx.post(session.url, data=data)


def test_checkout_setup_mode_saves_each_type(client: stripe.StripeClient) -> None:
    forms = {
        "sepa_debit": {"name": "Jenny Rosen", "iban": "DE89 3704 0044 0532 0130 00"},
        "us_bank_account": {
            "name": "Jenny Rosen",
            "routing_number": "110000000",
            "account_number": "000123456789",
            "account_type": "savings",
        },
        "link": {"link_email": "jenny@example.com"},
    }
    for kind, fields in forms.items():
        session = _session(client, "setup", ["card", kind], currency="usd")
        page = httpx.get(session.url).text
        assert 'data-testid="checkout-form"' in page  # the card form stays offered
        testid = {"sepa_debit": "sepa", "us_bank_account": "us-bank", "link": "link"}[kind]
        assert f'data-testid="checkout-{testid}-form"' in page
        response = _post(session, {"payment_method_type": kind, **fields})
        assert response.status_code == 303, response.text
        done = client.v1.checkout.sessions.retrieve(session.id)
        assert done.status == "complete"
        seti = client.v1.setup_intents.retrieve(str(done.setup_intent))
        assert seti.status == "succeeded"
        pm = client.v1.payment_methods.retrieve(str(seti.payment_method))
        assert pm.type == kind and pm.customer == done.customer
    assert pm.link.email == "jenny@example.com"


def test_checkout_subscription_mode_with_sepa(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": unique("Pro")})
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "eur",
            "unit_amount": 1900,
            "recurring": {"interval": "month"},
        }
    )
    session = _session(
        client,
        "subscription",
        ["card", "sepa_debit"],
        line_items=[{"price": price.id, "quantity": 1}],
    )
    page = httpx.get(session.url).text
    assert re.search(r"Subscribe with SEPA Direct Debit", page)
    response = _post(session, {"payment_method_type": "sepa_debit", "name": "Jenny", "iban": IBAN})
    assert response.status_code == 303, response.text
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.payment_status == "paid"
    sub = client.v1.subscriptions.retrieve(str(done.subscription))
    assert sub.status == "active"
    customer = client.v1.customers.retrieve(str(done.customer))
    default = client.v1.payment_methods.retrieve(
        str(customer.invoice_settings.default_payment_method)
    )
    assert default.type == "sepa_debit" and default.sepa_debit.last4 == "3000"


def test_checkout_refuses_what_stripe_refuses(client: stripe.StripeClient) -> None:
    # US bank accounts pay in dollars only; a euro subscription cannot offer them.
    product = client.v1.products.create(params={"name": unique("Pro")})
    eur = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "eur",
            "unit_amount": 1900,
            "recurring": {"interval": "month"},
        }
    )
    with pytest.raises(stripe.InvalidRequestError) as exc:
        _session(client, "subscription", ["us_bank_account"], line_items=[{"price": eur.id}])
    assert exc.value.param == "allowed_payment_method_types"
    # A form for a type the session does not take, or a wrong account number: nothing saved.
    session = _session(client, "setup", ["card", "us_bank_account"], currency="usd")
    assert _post(session, {"payment_method_type": "sepa_debit", "iban": IBAN}).status_code == 400
    bad = _post(
        session,
        {
            "payment_method_type": "us_bank_account",
            "name": "Jenny",
            "routing_number": "110000001",
            "account_number": "000123456789",
        },
    )
    assert bad.status_code == 400 and "Routing number" in bad.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_us_bank_payment_settles_later(
    client: stripe.StripeClient, receiver: Receiver, emulator: str
) -> None:
    product = client.v1.products.create(params={"name": unique("Pack")})
    price = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 1000}
    )
    session = _session(
        client, "payment", ["card", "us_bank_account"], line_items=[{"price": price.id}]
    )
    response = _post(
        session,
        {
            "payment_method_type": "us_bank_account",
            "name": "Jenny Rosen",
            "routing_number": "110000000",
            "account_number": "000222222227",
        },
    )
    assert response.status_code == 303, response.text
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.payment_status == "unpaid"
    pi = client.v1.payment_intents.retrieve(str(done.payment_intent))
    assert pi.status == "processing" and pi.payment_method_types == ["us_bank_account"]
    httpx.post(f"{emulator}/_emulator/checkout/sessions/{session.id}/settle")
    signed_event(receiver, "checkout.session.async_payment_failed", lambda o: o["id"] == session.id)
