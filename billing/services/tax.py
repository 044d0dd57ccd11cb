"""Tax decisions: the VAT rate, reverse charge or refusal for a customer's profile or a payer."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils.translation import gettext as _

from accounts.models import Customer

from ..models import Payer, TaxRate
from .errors import BillingError
from .payers import payer_details


EU_COUNTRIES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)


@dataclass(frozen=True)
class TaxDecision:
    percent: Decimal
    label: str
    reverse_charge: bool = False


class TaxNotConfigured(BillingError):
    """No VAT rate is configured where the supply is taxed: refuse to invoice rather than charge 0%."""


def _seller_country() -> str:
    return (settings.BILLING_SELLER_COUNTRY or "").strip().upper()


def tax_for(customer: Customer) -> TaxDecision:
    """Tax rule for the customer's profile (see `_tax_decision`)."""
    is_verified_company = (
        customer.profile_type == Customer.ProfileType.COMPANY
        and customer.verification_status == Customer.Verification.VERIFIED
        and bool(customer.company_vat_number.strip())
    )
    return _tax_decision(customer.country, customer.profile_type, is_verified_company)


def payer_country_evidenced(payer: "Payer") -> bool:
    """Place-of-supply evidence: a payer's country counts for tax when it is the profile's country, or
    staff approved it (`payer_country_approve`), or staff verified the company (its address included)."""
    if payer.is_profile or payer.country.strip().upper() == payer.customer.country.strip().upper():
        return True
    if payer.payer_type == Payer.Type.COMPANY and payer.verification_status == Payer.Verification.VERIFIED:
        return True
    return payer.country_approved_at is not None


def tax_for_payer(payer: "Payer") -> TaxDecision:
    """The same tax rule applied to a payer's country, type and verification. Without evidence for the
    payer's country (a Dutch customer typing a "US" payer) the profile's country decides."""
    details = payer_details(payer)
    country = details.country if payer_country_evidenced(payer) else payer.customer.country
    return _tax_decision(country, details.payer_type, details.is_verified_company and bool(details.vat_number.strip()))


def _tax_decision(country: str, profile_type: str, is_verified_company_with_vat: bool) -> TaxDecision:
    """The staff rate for (country, profile type), else (country, any). A rate marked reverse charge
    applies only to a staff-verified company with a VAT number across an EU border from the seller
    (`BILLING_SELLER_COUNTRY`; NL→NL pays NL VAT) — 0% with a reverse-charge note; otherwise the next
    rate in line applies. With no applicable rate: a verified VAT-registered EU company across the
    border is reverse charged; any other EU customer is refused (`TaxNotConfigured`); outside the EU
    no tax. An empty seller country turns the EU rules off (only the configured rates apply)."""
    country = (country or "").strip().upper()
    seller = _seller_country()
    cross_border_eu = country in EU_COUNTRIES and country != seller
    reverse_charge_allowed = is_verified_company_with_vat and (cross_border_eu or not seller)
    reverse_charge = TaxDecision(Decimal("0"), _("Reverse charge: VAT to be accounted for by the recipient"), True)
    rates = {r.profile_type: r for r in TaxRate.objects.filter(country=country)} if country else {}
    for profile in (profile_type, TaxRate.Profile.ANY):
        rate = rates.get(profile)
        if rate is None:
            continue
        if rate.reverse_charge:
            if reverse_charge_allowed:
                return reverse_charge
            continue
        return TaxDecision(rate.percent, f"{rate.label} {rate.percent.normalize()}%")
    if seller and country in EU_COUNTRIES:
        if reverse_charge_allowed:
            return reverse_charge
        raise TaxNotConfigured(
            _("We cannot invoice customers in %(country)s yet: no VAT rate is configured for it. Please contact support.")
            % {"country": country}, code="tax_not_configured")
    return TaxDecision(Decimal("0"), "")
