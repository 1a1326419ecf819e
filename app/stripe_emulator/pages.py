"""The hosted pages: Checkout, the billing portal and invoices (HTML and PDF)."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import (
    authentication,
    cards,
    checkout,
    discounts,
    invoices,
    payment_actions,
    payment_method_types,
    payments,
    subscriptions,
    tax_ids,
)
from app.stripe_emulator.core import Emulator
from app.stripe_emulator.errors import StripeError, no_such
from app.stripe_emulator.rendering import date, money, render_page

MODE_LABELS = {
    "subscription": "Subscribe",
    "payment": "One-time payment",
    "setup": "Save a card for later",
}
# What the submit button says, as on Stripe's page: nothing is paid when saving a card.
SUBMIT_LABELS = {"subscription": "Subscribe", "payment": "Pay", "setup": "Save card"}


# Checkout


def checkout_page(emu: Emulator, session: dict[str, Any], error: str | None = None) -> str:
    if session["status"] != "open":
        return _checkout_done(session)
    return render_page(
        "checkout.html",
        session=session,
        line_items=session["_line_items"]["data"],
        mode_label=MODE_LABELS[session["mode"]],
        submit_label=SUBMIT_LABELS[session["mode"]],
        trial_days=session.get("_trial_days"),
        ask_email=not session.get("customer") and not session.get("customer_email"),
        ask_address=checkout.asks_address(session, _customer_of(emu, session)),
        ask_tax_id=session["tax_id_collection"]["enabled"],
        tax_id_types=tax_ids.TYPES,
        promotion_code=_applied_code(emu, session),
        test_code=discounts.TEST_CODE,
        error=error,
    )


def _customer_of(emu: Emulator, session: dict[str, Any]) -> dict[str, Any] | None:
    return emu.store.get(session["customer"]) if session.get("customer") else None


def _applied_code(emu: Emulator, session: dict[str, Any]) -> str | None:
    applied = session.get("_discount") or {}
    promo_id = applied.get("promotion_code") or applied.get("_promotion_code")
    promo = emu.store.get(promo_id) if promo_id else None
    return promo["code"] if promo else None


def apply_promotion_code(emu: Emulator, session_id: str, code: str) -> tuple[int, str, str | None]:
    """The promotion code form: applied (or removed), back to the page with the new total."""
    session = _load(emu, session_id, "checkout.session")
    try:
        with emu.store.transaction():
            checkout.apply_promotion_code(emu, session, code)
    except StripeError as exc:
        session = _load(emu, session_id, "checkout.session")
        return 400, checkout_page(emu, session, exc.message), None
    return 303, "", f"/checkout/{session_id}"


def _checkout_done(session: dict[str, Any]) -> str:
    complete = session["status"] == "complete"
    return render_page(
        "checkout_done.html",
        message=(
            "This checkout is complete." if complete else "This checkout session has expired."
        ),
        link=session.get("success_url") if complete else session.get("cancel_url"),
    )


def submit_checkout(
    emu: Emulator, session_id: str, form: dict[str, str]
) -> tuple[int, str, str | None]:
    """Returns (status, html, redirect location)."""
    session = _load(emu, session_id, "checkout.session")
    number = cards.normalize(form.get("card_number", ""))
    if session["status"] == "open" and authentication.needed_on_session(number):
        # The card asks for 3-D Secure: the authentication step comes before the payment.
        with emu.store.transaction():
            session["_pending_authentication"] = form
            emu.save(session)
        html = render_page(
            "checkout_authenticate.html",
            session=session,
            authentication_url=f"/checkout/{session_id}/authenticate",
        )
        return 200, html, None
    return _complete_checkout(emu, session, form)


def authenticate_checkout(
    emu: Emulator, session_id: str, action: str
) -> tuple[int, str, str | None]:
    """The outcome of Checkout's authentication step (`action` complete or fail)."""
    session = _load(emu, session_id, "checkout.session")
    form = session.pop("_pending_authentication", None)
    if not form or session["status"] != "open":
        return 400, checkout_page(emu, session, "There is no payment to authenticate."), None
    with emu.store.transaction():
        emu.save(session)
    if action != "complete":
        return 402, checkout_page(emu, session, authentication.FAILED_MESSAGE), None
    with authentication.confirmed():
        return _complete_checkout(emu, session, form)


def _complete_checkout(
    emu: Emulator, session: dict[str, Any], form: dict[str, str]
) -> tuple[int, str, str | None]:
    session_id = session["id"]
    try:
        with emu.store.transaction():
            session = checkout.complete(emu, session, form)
            if authentication.needed_on_session(cards.normalize(form.get("card_number", ""))):
                authentication.set_up(emu, session.get("customer"), form["card_number"])
    except StripeError as exc:
        session = _load(emu, session_id, "checkout.session")
        status = 402 if exc.type == "card_error" else 400
        return status, checkout_page(emu, session, exc.message), None
    success = session.get("success_url")
    if success:
        return 303, "", success.replace("{CHECKOUT_SESSION_ID}", session["id"])
    return 200, _checkout_done(session), None


def _load(emu: Emulator, object_id: str, kind: str) -> dict[str, Any]:
    return emu.load(object_id, kind)


# Billing portal


def portal_session(emu: Emulator, session_id: str, secret: str) -> dict[str, Any]:
    session = emu.store.get(session_id)
    if (
        not session
        or session.get("object") != "billing_portal.session"
        or (session.get("_secret") != secret)
    ):
        raise no_such("billing_portal.session", session_id)
    return session


def portal_page(emu: Emulator, session: dict[str, Any], error: str | None = None) -> str:
    customer = emu.load(session["customer"], "customer")
    default_pm = customer["invoice_settings"].get("default_payment_method")
    subs = [
        _portal_subscription(emu, s)
        for s in emu.store.all("subscription", customer["id"])
        if s["status"] not in {"canceled", "incomplete_expired"}
    ]
    cards = [
        _portal_card(p, p["id"] == default_pm)
        for p in emu.store.all("payment_method", customer["id"])
        if p.get("customer") == customer["id"]
    ]
    invoices = [i for i in emu.store.all("invoice", customer["id"])[:12] if i["status"] != "draft"]
    return render_page(
        "portal.html",
        session=session,
        customer=customer,
        base=f"/portal/{session['id']}/{session['_secret']}",
        subscriptions=subs,
        cards=cards,
        invoices=invoices,
        error=error,
    )


def _portal_subscription(emu: Emulator, sub: dict[str, Any]) -> dict[str, Any]:
    item = sub["items"]["data"][0]
    product = emu.store.get(item["price"]["product"]) or {}
    return {
        "id": sub["id"],
        "status": sub["status"],
        "cancel_at_period_end": sub["cancel_at_period_end"],
        "period_end": item["current_period_end"],
        "price": item["price"],
        "product_name": product.get("name", ""),
    }


def _portal_card(pm: dict[str, Any], is_default: bool) -> dict[str, Any]:
    return {"id": pm["id"], "label": payment_method_types.label(pm), "is_default": is_default}


def portal_action(
    emu: Emulator, session: dict[str, Any], action: list[str], form: dict[str, str]
) -> str | None:
    """Perform a portal form action; returns an error message or None."""
    customer_id = session["customer"]
    try:
        with emu.store.transaction():
            _portal_do(emu, customer_id, action, form)
    except StripeError as exc:
        return exc.message
    return None


def _portal_do(emu: Emulator, customer_id: str, action: list[str], form: dict[str, str]) -> None:
    customer = emu.load(customer_id, "customer")
    now = emu.now_for(customer)
    match action:
        case ["subscriptions", sub_id, ("cancel" | "resume") as verb]:
            sub = emu.load(sub_id, "subscription")
            if sub["customer"] != customer_id:
                raise no_such("subscription", sub_id)
            subscriptions.update(
                emu, sub, {"cancel_at_period_end": "true" if verb == "cancel" else "false"}, now
            )
        case ["payment_methods"]:
            from app.stripe_emulator import cards

            month, year = cards.parse_expiry(form.get("exp_date", ""), now)
            pm = payments.create_card(
                emu, form.get("card_number", ""), month, year, form.get("cvc", ""), now
            )
            payments.attach(emu, pm, customer_id)
            if not customer["invoice_settings"].get("default_payment_method"):
                _set_default(emu, customer_id, pm["id"])
        case ["payment_methods", pm_id, "default"]:
            payments.owned_by(emu, pm_id, customer_id, now, "payment_method")
            _set_default(emu, customer_id, pm_id)
        case ["payment_methods", pm_id, "detach"]:
            pm = payments.owned_by(emu, pm_id, customer_id, now, "payment_method")
            payments.detach(emu, pm)
        case _:
            raise StripeError(404, "Unknown portal action.")


def _set_default(emu: Emulator, customer_id: str, pm_id: str) -> None:
    emu.update(
        emu.load(customer_id, "customer"),
        lambda c: c["invoice_settings"].update(default_payment_method=pm_id),
        "customer.updated",
    )


# Invoices


def invoice_page(emu: Emulator, invoice: dict[str, Any]) -> str:
    pi = emu.store.get(invoices.payment_intent_of(invoice) or "") or {}
    error = (pi.get("last_payment_error") or {}).get("message")
    return render_page(
        "invoice.html",
        invoice=invoice,
        needs_action=payment_actions.awaiting(emu, invoice) is not None,
        payment_error=error if invoice["status"] == "open" else None,
        authentication_url=f"/invoice/{invoice['id']}/authenticate",
    )


def authenticate_invoice(emu: Emulator, invoice_id: str, action: str) -> None:
    """The outcome of the hosted invoice page's authentication step."""
    with emu.store.transaction():
        invoice = emu.load(invoice_id, "invoice")
        if action == "complete":
            payment_actions.complete(emu, invoice, emu.now_for(invoice))
        else:
            payment_actions.fail(emu, invoice)


def index_page() -> str:
    return render_page("index.html")


def not_found_page(message: str) -> str:
    return render_page("not_found.html", message=message)


def invoice_pdf(invoice: dict[str, Any]) -> bytes:
    """A one-page PDF with the invoice's number, status and total."""
    lines = [
        f"Invoice {invoice.get('number') or invoice['id']}",
        f"Customer: {invoice.get('customer_email') or invoice['customer']}",
        f"Date: {date(invoice['created'])}   Status: {invoice['status']}",
        *(
            f"{line['description'] or ''}: {money(line['amount'], line['currency'])}"
            for line in invoice["lines"]["data"]
        ),
        f"Total: {money(invoice['total'], invoice['currency'])}",
    ]
    text = (
        "BT /F1 12 Tf 50 780 Td 16 TL "
        + " ".join(f"({_pdf_escape(line)}) Tj T*" for line in lines)
        + " ET"
    )
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(text.encode('latin-1', 'replace'))} >>\nstream\n{text}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1", "replace")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return out


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").replace("×", "x")
