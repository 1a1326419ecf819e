"""Billing details: the name, address, tax IDs and invoice email a customer's invoices carry.

Stripe holds them, on the customer (`name`, `address`, `email`: where Stripe sends invoices)
and its `tax_ids`; Stripe validates a tax ID and copies all of them onto each invoice it
finalizes. Our rows (`BillingDetails`, `CustomerTaxId`) mirror the Stripe customer, so pages
read them without a Stripe call: `BillingDetailsService` writes through Stripe and mirrors its
answer; `BillingDetailsMirror` (app.billing.details_mirror) re-reads the customer on
`customer.updated` and `customer.tax_id.*` (app.stripe_sync.handlers), whatever the order the
events come in, and in the daily reconcile. A new Stripe customer (the first, or one made
again after the old one was deleted at Stripe) is given the details and tax IDs our rows hold
(app.billing.details_restore).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.details_mirror import ADDRESS_FIELDS, BillingDetailsMirror
from app.billing.details_repository import BillingDetailsRepository
from app.billing.models import BillingDetails, CustomerTaxId
from app.billing.service import BillingService
from app.customers.models import Customer
from app.db.engine import write_from_here
from app.db.transactions import rolls_back_on_error
from app.lib.countries import COUNTRIES, address_lines
from app.lib.emails import normalize_email
from app.lib.errors import NotFound, ValidationFailed
from app.lib.tax_ids import TAX_ID_TYPES
from app.stripe.gateway import StripeGateway, StripeGatewayError, StripeNotFound, content_hash
from app.stripe.gateway import idempotency_key as stripe_key
from app.stripe.objects import Address

MAX_TAX_IDS = 25  # Stripe's limit per customer


@dataclass(frozen=True)
class DetailsInput:
    """The billing details form, as typed (checked by `BillingDetailsService.save`)."""

    name: str = ""
    line1: str = ""
    line2: str = ""
    city: str = ""
    postal_code: str = ""
    state: str = ""
    country: str = ""
    invoice_email: str = ""


@dataclass(frozen=True)
class DetailsView:
    """What the billing details page shows."""

    details: BillingDetails | None
    tax_ids: list[CustomerTaxId] = field(default_factory=list)

    @property
    def address_lines(self) -> list[str]:
        return address_lines(_address_of(self.details)) if self.details else []


def _address_of(row: BillingDetails) -> dict[str, Any]:
    return {name: getattr(row, name) for name in ADDRESS_FIELDS}


def _text(value: str, name: str, label: str, limit: int) -> str | None:
    value = " ".join(value.split())
    if len(value) > limit:
        raise ValidationFailed(f"{label} must be at most {limit} characters.", field=name)
    return value or None


def checked(values: DetailsInput, account_email: str | None) -> tuple[DetailsInput, str]:
    """The form's values trimmed and checked (an address needs line 1 and a country from the
    list; the invoice email must be an address), and the email Stripe sends invoices to: the
    one given, else the account's."""
    texts = {
        "name": ("Billing name", 255),
        "line1": ("Address line 1", 255),
        "line2": ("Address line 2", 255),
        "city": ("City", 255),
        "postal_code": ("Postal code", 32),
        "state": ("State or region", 255),
    }
    clean = {name: _text(getattr(values, name), name, *rule) or "" for name, rule in texts.items()}
    country = values.country.strip().upper()
    if country and country not in COUNTRIES:
        raise ValidationFailed("Choose a country from the list.", field="country")
    if any(clean[name] for name in ("line1", "line2", "city", "postal_code", "state")) or country:
        if not clean["line1"]:
            raise ValidationFailed("Enter the first line of the address.", field="line1")
        if not country:
            raise ValidationFailed("Choose the country of the address.", field="country")
    invoice_email = ""
    if values.invoice_email.strip():
        try:
            invoice_email = normalize_email(values.invoice_email)
        except ValidationFailed as exc:
            raise ValidationFailed(exc.message, field="invoice_email") from exc
    result = DetailsInput(**clean, country=country, invoice_email=invoice_email)
    return result, invoice_email or account_email or ""


class BillingDetailsService:
    """The customer's billing details page: read the mirror, change them at Stripe."""

    def __init__(
        self, session: AsyncSession, gateway: StripeGateway, billing: BillingService
    ) -> None:
        self.session = session
        self.gateway = gateway
        self.billing = billing
        self.repo = BillingDetailsRepository(session)
        self.mirror = BillingDetailsMirror(session, gateway)

    async def view(self, customer_id: int) -> DetailsView:
        """The customer's details and tax IDs, as mirrored (by id: after a refused change the
        session was rolled back, and the customer's row with it)."""
        return DetailsView(
            await self.repo.details(customer_id), await self.repo.tax_ids(customer_id)
        )

    @rolls_back_on_error
    async def save(self, customer: Customer, values: DetailsInput) -> None:
        """Set the billing name, address and invoice email at Stripe, then mirror them."""
        clean, email = checked(values, customer.email)
        stripe_customer_id = await self.billing.ensure_stripe_customer(customer)
        address: Address | None = None
        if clean.line1:
            address = cast(Address, {name: getattr(clean, name) or None for name in ADDRESS_FIELDS})
        remote = await self.gateway.update_billing_details(
            stripe_customer_id,
            name=clean.name or None,
            address=address,
            email=email or None,
            # The same form twice is one change; another change is a new request.
            key=stripe_key("billing-details", customer.public_id, content_hash(vars(clean))),
        )
        await write_from_here(self.session)  # after the Stripe calls
        self.mirror.apply_customer(customer, remote, await self.repo.details(customer.id))
        await self.session.commit()

    @rolls_back_on_error
    async def add_tax_id(self, customer: Customer, tax_type: str, value: str) -> CustomerTaxId:
        """Add a tax ID at Stripe, which validates it: a malformed one is refused with
        Stripe's own message, on the form's value field."""
        value = " ".join(value.split())
        if tax_type not in TAX_ID_TYPES:
            raise ValidationFailed("Choose the type of tax ID.", field="tax_id_type")
        if not value:
            raise ValidationFailed("Enter the tax ID.", field="tax_id_value")
        if len(value) > 64:
            raise ValidationFailed("A tax ID is at most 64 characters.", field="tax_id_value")
        current = await self.repo.tax_ids(customer.id)
        if len(current) >= MAX_TAX_IDS:
            raise ValidationFailed(
                f"A customer can have at most {MAX_TAX_IDS} tax IDs.", field="tax_id_value"
            )
        stripe_customer_id = await self.billing.ensure_stripe_customer(customer)
        try:
            created = await self.gateway.create_tax_id(
                stripe_customer_id,
                tax_type=tax_type,
                value=value,
                # A double submit adds it once; the same value again after a removal is new.
                key=stripe_key(
                    "tax-id",
                    customer.public_id,
                    tax_type,
                    value,
                    content_hash({"have": sorted(t.stripe_tax_id for t in current)}),
                ),
            )
        except StripeGatewayError as exc:
            if exc.stripe_param == "value" or exc.stripe_code == "tax_id_invalid":
                raise ValidationFailed(
                    exc.message, field="tax_id_value", code="tax_id_invalid"
                ) from exc
            raise
        await write_from_here(self.session)  # after the Stripe call
        row = await self.mirror.apply_tax_id(customer, created)
        await self.session.commit()
        return row

    @rolls_back_on_error
    async def remove_tax_id(self, customer: Customer, tax_id: int) -> None:
        row = await self.repo.tax_id(customer.id, tax_id)
        if row is None:
            raise NotFound("No such tax ID.")
        if customer.stripe_customer_id:
            # Already gone at Stripe: forget it here too.
            with contextlib.suppress(StripeNotFound):
                await self.gateway.delete_tax_id(customer.stripe_customer_id, row.stripe_tax_id)
        await write_from_here(self.session)  # after the Stripe call
        await self.session.delete(row)
        await self.session.commit()
