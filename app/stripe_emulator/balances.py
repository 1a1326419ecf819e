"""The customer's credit balance: adjustments, and what finalized invoices take from it or add
to it (Stripe, "Customer credit balance"). A negative balance is credit the customer has."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator.core import Emulator
from app.stripe_emulator.store import new_id


def settle(balance: int, total: int) -> tuple[int, int]:
    """(amount due, ending balance) of an invoice of `total` finalized on `balance`: credit pays
    what it can, a debit is added, and a negative total becomes credit instead of a payment."""
    if total == 0:
        return 0, balance
    combined = total + balance
    return max(combined, 0), min(combined, 0)


def show_on(invoice: dict[str, Any], balance: int) -> None:
    """Set an invoice's balance fields and amounts as finalizing it on `balance` would."""
    due, ending = settle(balance, invoice["total"])
    invoice.update(
        starting_balance=balance,
        ending_balance=ending,
        amount_due=due,
        amount_remaining=due,
    )


def apply_to_invoice(emu: Emulator, invoice: dict[str, Any], now: int) -> None:
    """At finalization: the invoice takes from (or gives to) the customer's balance."""
    customer = emu.load(invoice["customer"], "customer")
    balance = int(customer.get("balance") or 0)
    show_on(invoice, balance)
    emu.save(invoice)
    change = invoice["ending_balance"] - balance
    if change:
        record(
            emu,
            customer,
            change,
            invoice["currency"],
            now,
            "applied_to_invoice",
            invoice=invoice["id"],
        )


def record(
    emu: Emulator,
    customer: dict[str, Any],
    amount: int,
    currency: str,
    now: int,
    type_: str,
    *,
    description: str | None = None,
    invoice: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A customer_balance_transaction moving the balance by `amount` (`customer.updated`)."""
    ending = int(customer.get("balance") or 0) + amount
    transaction = {
        "id": new_id("cbtxn"),
        "object": "customer_balance_transaction",
        "amount": amount,
        "checkout_session": None,
        "created": now,
        "credit_note": None,
        "currency": currency,
        "customer": customer["id"],
        "customer_account": None,
        "description": description,
        "ending_balance": ending,
        "invoice": invoice,
        "livemode": False,
        "metadata": metadata or {},
        "type": type_,
    }
    emu.save(transaction)

    def change(c: dict[str, Any]) -> None:
        c["balance"] = ending
        c["currency"] = c.get("currency") or currency

    emu.update(customer, change, "customer.updated")
    return transaction
