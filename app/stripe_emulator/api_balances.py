"""A customer's balance transactions (`/v1/customers/{id}/balance_transactions`)."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import balances
from app.stripe_emulator.core import Emulator, int_param, metadata_update, paginate, require
from app.stripe_emulator.errors import StripeError, no_such
from app.stripe_emulator.routing import ApiRequest, route


@route("POST", "/v1/customers/{id}/balance_transactions")
def create_balance_transaction(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    customer = emu.load(req["id"], "customer")
    p = req.params
    require(p, "amount")
    amount = int_param(p, "amount") or 0
    currency = str(require(p, "currency")).lower()
    if customer.get("currency") and customer["currency"] != currency:
        raise StripeError(
            400,
            f"The currency of the balance transaction ({currency}) must match the customer's "
            f"currency ({customer['currency']}).",
            param="currency",
        )
    return balances.record(
        emu,
        customer,
        amount,
        currency,
        emu.now_for(customer),
        "adjustment",
        description=p.get("description") or None,
        metadata=metadata_update({}, p),
    )


@route("GET", "/v1/customers/{id}/balance_transactions")
def list_balance_transactions(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    customer = emu.load(req["id"], "customer")
    items = emu.store.all("customer_balance_transaction", customer["id"])
    if req.params.get("invoice"):
        items = [t for t in items if t["invoice"] == req.params["invoice"]]
    return paginate(items, req.params, f"/v1/customers/{customer['id']}/balance_transactions")


def _transaction(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    customer = emu.load(req["id"], "customer")
    transaction = emu.store.get(req["txn"])
    if (
        transaction is None
        or transaction.get("object") != "customer_balance_transaction"
        or transaction["customer"] != customer["id"]
    ):
        raise no_such("customer_balance_transaction", req["txn"])
    return transaction


@route("GET", "/v1/customers/{id}/balance_transactions/{txn}")
def retrieve_balance_transaction(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return _transaction(emu, req)


@route("POST", "/v1/customers/{id}/balance_transactions/{txn}")
def update_balance_transaction(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    transaction = _transaction(emu, req)
    if "description" in req.params:
        transaction["description"] = req.params["description"] or None
    transaction["metadata"] = metadata_update(transaction["metadata"], req.params)
    return emu.save(transaction)
