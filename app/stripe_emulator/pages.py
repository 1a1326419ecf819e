"""The hosted pages: Checkout, the billing portal and invoices (HTML and PDF)."""

from __future__ import annotations

from html import escape
from typing import Any

from app.stripe_emulator import checkout, payments, subscriptions
from app.stripe_emulator.core import Emulator
from app.stripe_emulator.errors import StripeError, no_such
from app.stripe_emulator.html import TEST_CARDS, card_fields, date, error_box, money, page

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
    rows = "".join(
        f'<tr><td data-testid="checkout-product">{escape(item["description"])}</td>'
        f"<td>{item['quantity']}</td><td>{money(item['amount_total'], item['currency'])}"
        f"{_interval(item['price'])}</td></tr>"
        for item in session["_line_items"]["data"]
    )
    trial = session.get("_trial_days")
    trial_note = (
        f'<p data-testid="checkout-trial">{trial}-day free trial, nothing is charged today.</p>'
        if trial
        else ""
    )
    email = ""
    if not session.get("customer") and not session.get("customer_email"):
        email = '<label for="email">Email</label><input id="email" name="email" type="email">'
    cancel = (
        f'<p><a href="{escape(session["cancel_url"])}" data-testid="checkout-cancel">'
        "Cancel and return</a></p>"
        if session.get("cancel_url")
        else ""
    )
    body = (
        f"<h1>Checkout</h1>"
        f'<p><span class="badge" data-testid="checkout-mode">'
        f"{escape(MODE_LABELS[session['mode']])}</span></p>"
        + (
            f"<table><tr><th>Product</th><th>Qty</th><th>Price</th></tr>{rows}</table>"
            if rows
            else ""
        )
        + f'<p>Total due today: <strong data-testid="checkout-amount">'
        f"{money(session['amount_total'], session.get('currency'))}</strong></p>"
        + trial_note
        + error_box(error)
        + f'<form method="post" action="/checkout/{escape(session["id"])}" '
        'data-testid="checkout-form">'
        + email
        + card_fields()
        + f'<button type="submit" data-testid="checkout-pay">{SUBMIT_LABELS[session["mode"]]}'
        + "</button></form>"
        + cancel
        + TEST_CARDS
    )
    return page("Checkout", body)


def _interval(price: dict[str, Any]) -> str:
    recurring = price.get("recurring")
    if not recurring:
        return ""
    count = recurring.get("interval_count") or 1
    return f" / {recurring['interval']}" if count == 1 else f" / {count} {recurring['interval']}s"


def _checkout_done(session: dict[str, Any]) -> str:
    link = (
        session.get("success_url") if session["status"] == "complete" else session.get("cancel_url")
    )
    text = (
        "This checkout is complete."
        if session["status"] == "complete"
        else ("This checkout session has expired.")
    )
    back = f'<p><a href="{escape(link)}">Continue</a></p>' if link else ""
    return page("Checkout", f'<h1 data-testid="checkout-status">{text}</h1>{back}')


def submit_checkout(
    emu: Emulator, session_id: str, form: dict[str, str]
) -> tuple[int, str, str | None]:
    """Returns (status, html, redirect location)."""
    session = _load(emu, session_id, "checkout.session")
    try:
        with emu.store.transaction():
            session = checkout.complete(emu, session, form)
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
    base = f"/portal/{session['id']}/{session['_secret']}"
    default_pm = customer["invoice_settings"].get("default_payment_method")
    subs = [
        s
        for s in emu.store.all("subscription", customer["id"])
        if s["status"] not in {"canceled", "incomplete_expired"}
    ]
    sub_html = "".join(_portal_subscription(emu, s, base) for s in subs) or (
        '<p data-testid="portal-no-subscription">No active subscription.</p>'
    )
    pms = [
        p
        for p in emu.store.all("payment_method", customer["id"])
        if p.get("customer") == customer["id"]
    ]
    pm_rows = "".join(_portal_card(p, base, p["id"] == default_pm) for p in pms) or (
        "<tr><td>No saved cards.</td></tr>"
    )
    invoice_rows = "".join(
        f'<tr data-testid="portal-invoice"><td>{escape(i.get("number") or i["id"])}</td>'
        f"<td>{date(i['created'])}</td><td>{money(i['total'], i['currency'])}</td>"
        f"<td>{escape(i['status'])}</td>"
        f'<td><a href="{escape(i.get("hosted_invoice_url") or "")}">View</a></td></tr>'
        for i in emu.store.all("invoice", customer["id"])[:12]
        if i["status"] != "draft"
    )
    back = (
        f'<p><a href="{escape(session["return_url"])}" data-testid="portal-return">'
        "Return to the portal</a></p>"
        if session.get("return_url")
        else ""
    )
    body = (
        f"<h1>Billing</h1><p>{escape(customer.get('email') or customer['id'])}</p>"
        + back
        + error_box(error)
        + "<h2>Subscription</h2>"
        + sub_html
        + f"<h2>Payment methods</h2><table>{pm_rows}</table>"
        + f'<form method="post" action="{base}/payment_methods" data-testid="portal-add-card">'
        + "<h3>Add a card</h3>"
        + card_fields()
        + '<button type="submit">Add card</button></form>'
        + TEST_CARDS
        + f"<h2>Invoices</h2><table>{invoice_rows}</table>"
    )
    return page("Billing portal", body)


def _portal_subscription(emu: Emulator, sub: dict[str, Any], base: str) -> str:
    item = sub["items"]["data"][0]
    product = emu.store.get(item["price"]["product"]) or {}
    end = item["current_period_end"]
    if sub["cancel_at_period_end"]:
        state = f"Cancels on {date(end)}"
        action = (
            f'<form method="post" action="{base}/subscriptions/{sub["id"]}/resume">'
            '<button type="submit">Renew subscription</button></form>'
        )
    else:
        state = f"Renews on {date(end)}"
        action = (
            f'<form method="post" action="{base}/subscriptions/{sub["id"]}/cancel">'
            '<button type="submit" class="secondary" data-testid="portal-cancel">'
            "Cancel subscription</button></form>"
        )
    return (
        f'<div data-testid="portal-subscription"><p><strong>{escape(product.get("name", ""))}'
        f"</strong> · {money(item['price']['unit_amount'], item['price']['currency'])}"
        f'{_interval(item["price"])} · <span class="badge">{escape(sub["status"])}</span></p>'
        f"<p>{state}</p>{action}</div>"
    )


def _portal_card(pm: dict[str, Any], base: str, is_default: bool) -> str:
    card = pm["card"]
    label = (
        f"{card['brand'].title()} •••• {card['last4']} (exp {card['exp_month']:02d}/"
        f"{card['exp_year']})"
    )
    actions = ""
    if not is_default:
        actions += (
            f'<form method="post" action="{base}/payment_methods/{pm["id"]}/default">'
            '<button type="submit" class="secondary">Make default</button></form>'
        )
    actions += (
        f'<form method="post" action="{base}/payment_methods/{pm["id"]}/detach">'
        '<button type="submit" class="secondary">Remove</button></form>'
    )
    badge = ' <span class="badge">Default</span>' if is_default else ""
    return f'<tr data-testid="portal-card"><td>{escape(label)}{badge}</td><td>{actions}</td></tr>'


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
    rows = "".join(
        f"<tr><td>{escape(line['description'] or '')}</td><td>{line['quantity']}</td>"
        f"<td>{money(line['amount'], line['currency'])}</td></tr>"
        for line in invoice["lines"]["data"]
    )
    body = (
        f'<h1>Invoice <span data-testid="invoice-number">{escape(invoice["number"] or "")}'
        f"</span></h1>"
        f'<p>Status: <span class="badge" data-testid="invoice-status">'
        f"{escape(invoice['status'])}</span></p>"
        f"<p>{escape(invoice.get('customer_email') or invoice['customer'])} · "
        f"{date(invoice['created'])}</p>"
        f"<table><tr><th>Description</th><th>Qty</th><th>Amount</th></tr>{rows}</table>"
        f'<p>Total: <strong data-testid="invoice-total">'
        f"{money(invoice['total'], invoice['currency'])}</strong> · "
        f"Paid: {money(invoice['amount_paid'], invoice['currency'])}</p>"
        f'<p><a href="{escape(invoice.get("invoice_pdf") or "")}">Download PDF</a></p>'
    )
    return page(f"Invoice {invoice['number'] or invoice['id']}", body)


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
