"""The tax ID types the billing details page offers (Stripe's `tax_id` types; Stripe knows
more), with their names and the example value of Stripe's "Customer tax IDs" page."""

from __future__ import annotations

TAX_ID_TYPES: dict[str, tuple[str, str]] = {
    "eu_vat": ("EU VAT number", "DE123456789"),
    "gb_vat": ("UK VAT number", "GB123456789"),
    "us_ein": ("US Employer Identification Number (EIN)", "12-3456789"),
    "au_abn": ("Australian Business Number (ABN)", "12345678912"),
    "ca_bn": ("Canadian Business Number (BN)", "123456789"),
    "ca_gst_hst": ("Canadian GST/HST number", "123456789RT0002"),
    "ch_vat": ("Swiss VAT number", "CHE-123.456.789 MWST"),
    "no_vat": ("Norwegian VAT number", "123456789MVA"),
    "nz_gst": ("New Zealand GST number", "123456789"),
    "in_gst": ("Indian GST number", "12ABCDE3456FGZH"),
    "jp_cn": ("Japanese Corporate Number", "1234567891234"),
    "sg_uen": ("Singaporean UEN", "123456789F"),
    "za_vat": ("South African VAT number", "4123456789"),
    "br_cnpj": ("Brazilian CNPJ number", "01.234.456/5432-10"),
    "mx_rfc": ("Mexican RFC number", "ABC010203AB9"),
}


def tax_id_label(tax_type: str) -> str:
    """A tax ID type's name ("EU VAT number"); the type itself when the page does not offer it."""
    return TAX_ID_TYPES[tax_type][0] if tax_type in TAX_ID_TYPES else tax_type
