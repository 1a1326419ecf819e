"""Customer tax IDs (`/v1/customers/{id}/tax_ids`), checked as Stripe checks them.

Stripe validates a tax ID's value against its type's format and answers a malformed one with
`400 tax_id_invalid` ("Invalid value for eu_vat.", `param` value). The emulator knows the
formats of the types in `FORMATS` (the examples of Stripe's "Customer tax IDs" page all pass);
other types are refused by the parameter table, loudly rather than accepted unchecked.

Verification (EU, UK, Australian... numbers are checked against government registers) follows
Stripe's test-mode convention: a number whose digits are all 0 (`DE000000000`) is
`verified`, all 1 (`DE111111111`) `unverified`, anything else stays `pending`; types Stripe
does not verify have `verification: null`.
"""

from __future__ import annotations

import re
from typing import Any

from app.stripe_emulator.core import Emulator, paginate, require
from app.stripe_emulator.errors import StripeError, no_such
from app.stripe_emulator.routing import ApiRequest, route
from app.stripe_emulator.store import new_id

# type -> (pattern of the whole value, the country the type belongs to; None: from the value)
FORMATS: dict[str, tuple[str, str | None]] = {
    "eu_vat": (
        r"(ATU\d{8}|BE[01]\d{9}|BG\d{9,10}|CY\d{8}[A-Z]|CZ\d{8,10}|DE\d{9}|DK\d{8}"
        r"|EE\d{9}|ES[A-Z0-9]\d{7}[A-Z0-9]|FI\d{8}|FR[A-Z0-9]{2}\d{9}|EL\d{9}|GR\d{9}"
        r"|HR\d{11}|HU\d{8}|IE\d{7}[A-Z]{1,2}|IE\d[A-Z0-9+*]\d{5}[A-Z]|IT\d{11}"
        r"|LT(\d{9}|\d{12})|LU\d{8}|LV\d{11}|MT\d{8}|NL\d{9}B\d{2}|PL\d{10}|PT\d{9}"
        r"|RO\d{2,10}|SE\d{12}|SI\d{8}|SK\d{10}|XI(\d{9}|\d{12}|GD\d{3}|HA\d{3}))",
        None,
    ),
    "gb_vat": (r"GB(\d{9}|\d{12}|GD\d{3}|HA\d{3})", "GB"),
    "us_ein": (r"\d{2}-\d{7}", "US"),
    "au_abn": (r"\d{11}", "AU"),
    "au_arn": (r"\d{12}", "AU"),
    "ca_bn": (r"\d{9}", "CA"),
    "ca_gst_hst": (r"\d{9}RT\d{4}", "CA"),
    "ca_qst": (r"\d{10}TQ\d{4}", "CA"),
    "ch_vat": (r"CHE-\d{3}\.\d{3}\.\d{3} (MWST|TVA|IVA)", "CH"),
    "ch_uid": (r"CHE-\d{3}\.\d{3}\.\d{3}( HR)?", "CH"),
    "no_vat": (r"\d{9}MVA", "NO"),
    "nz_gst": (r"\d{8,9}", "NZ"),
    "in_gst": (r"\d{2}[A-Z]{5}\d{4}[A-Z][A-Z0-9]Z[A-Z0-9]", "IN"),
    "jp_cn": (r"\d{13}", "JP"),
    "sg_uen": (r"\d{9}[A-Z]|[A-Z]\d{2}[A-Z]{2}\d{4}[A-Z]", "SG"),
    "sg_gst": (r"M\d{8}[A-Z]", "SG"),
    "za_vat": (r"4\d{9}", "ZA"),
    "br_cnpj": (r"\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}", "BR"),
    "br_cpf": (r"\d{3}\.\d{3}\.\d{3}-\d{2}", "BR"),
    "mx_rfc": (r"[A-Z&Ñ]{3,4}\d{6}[A-Z0-9]{3}", "MX"),
    "es_cif": (r"[A-Z]\d{8}", "ES"),
    "is_vat": (r"\d{6}", "IS"),
    "li_uid": (r"CHE\d{9}", "LI"),
    "eu_oss_vat": (r"EU\d{9}", None),
    "kr_brn": (r"\d{3}-\d{2}-\d{5}", "KR"),
    "hk_br": (r"\d{8}", "HK"),
}
TYPES = tuple(sorted(FORMATS))
# The types Stripe checks against a government register (the others: `verification: null`).
VERIFIED_TYPES = {"eu_vat", "gb_vat", "au_abn", "in_gst", "no_vat", "za_vat", "ch_vat", "ch_uid"}


def check(tax_type: str, value: str, param: str = "value") -> str:
    """The value's country; raises Stripe's `tax_id_invalid` for a malformed value."""
    if tax_type not in FORMATS:
        raise StripeError(400, f"Invalid type: must be one of {', '.join(TYPES)}", param="type")
    pattern, country = FORMATS[tax_type]
    if not re.fullmatch(pattern, value):
        raise StripeError(400, f"Invalid value for {tax_type}.", code="tax_id_invalid", param=param)
    if country is None and tax_type == "eu_vat":
        country = {"EL": "GR", "XI": "GB"}.get(value[:2], value[:2])
    return country or ""


def _verification(tax_type: str, value: str) -> dict[str, Any] | None:
    if tax_type not in VERIFIED_TYPES:
        return None
    digits = re.sub(r"\D", "", value)
    status = "pending"
    if digits and set(digits) == {"0"}:
        status = "verified"
    elif digits and set(digits) == {"1"}:
        status = "unverified"
    verified = status == "verified"
    return {
        "status": status,
        "verified_address": None,
        "verified_name": "Test business" if verified else None,
    }


def create(emu: Emulator, customer: dict[str, Any], tax_type: str, value: str) -> dict[str, Any]:
    value = value.strip()
    country = check(tax_type, value)
    tax_id = {
        "id": new_id("txi"),
        "object": "tax_id",
        "country": country or None,
        "created": emu.now_for(customer),
        "customer": customer["id"],
        "livemode": False,
        "owner": {"type": "customer", "customer": customer["id"]},
        "type": tax_type,
        "value": value,
        "verification": _verification(tax_type, value),
    }
    emu.save(tax_id)
    emu.emit("customer.tax_id.created", tax_id)
    return tax_id


def of_customer(emu: Emulator, customer_id: str) -> list[dict[str, Any]]:
    """The customer's tax IDs, newest first (as Stripe lists them)."""
    return [t for t in emu.store.all("tax_id", customer_id) if not t.get("deleted")]


def invoice_tax_ids(emu: Emulator, customer_id: str) -> list[dict[str, str]]:
    """An invoice's `customer_tax_ids`: the customer's, oldest first, as `{type, value}`."""
    return [
        {"type": t["type"], "value": t["value"]} for t in reversed(of_customer(emu, customer_id))
    ]


def _load(emu: Emulator, customer_id: str, tax_id: str) -> dict[str, Any]:
    found = emu.store.get(tax_id)
    if (
        found is None
        or found.get("object") != "tax_id"
        or found.get("customer") != customer_id
        or found.get("deleted")
    ):
        raise no_such("tax_id", tax_id)
    return found


@route("POST", "/v1/customers/{id}/tax_ids")
def create_tax_id(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    customer = emu.load(req["id"], "customer")
    return create(emu, customer, require(req.params, "type"), str(require(req.params, "value")))


@route("GET", "/v1/customers/{id}/tax_ids")
def list_tax_ids(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    customer = emu.load(req["id"], "customer")
    return paginate(
        of_customer(emu, customer["id"]), req.params, f"/v1/customers/{customer['id']}/tax_ids"
    )


@route("GET", "/v1/customers/{id}/tax_ids/{tax}")
def retrieve_tax_id(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    customer = emu.load(req["id"], "customer")
    return _load(emu, customer["id"], req["tax"])


@route("DELETE", "/v1/customers/{id}/tax_ids/{tax}")
def delete_tax_id(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    customer = emu.load(req["id"], "customer")
    tax_id = _load(emu, customer["id"], req["tax"])
    emu.emit("customer.tax_id.deleted", tax_id)  # the tax ID as it was
    tax_id["deleted"] = True
    emu.save(tax_id)
    return {"id": tax_id["id"], "object": "tax_id", "deleted": True}
