"""The tax rule and invoice totals: pure functions, no queries.

One home for "how much tax, and what does the invoice total": `invoice_issue`, the set-based
`bulk.invoices_issue_and_pay`, `invoice_payer_choose` and the renewal forecasts all call
`tax_rule()` (through `billing.selectors.tax_for*`, which load the staff rates) and `invoice_totals()`.
"""
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils.translation import gettext as _

from .models import TaxRate
from .money import quantize
from .services.errors import BillingError

EU_COUNTRIES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)


@dataclass(frozen=True)
class TaxDecision:
    percent: Decimal
    label: str
    reverse_charge: bool = False


NO_TAX = TaxDecision(Decimal("0"), "")


class TaxNotConfigured(BillingError):
    """No VAT rate is configured where the supply is taxed: refuse to invoice rather than charge 0%."""


@dataclass(frozen=True)
class InvoiceTotals:
    subtotal: Decimal
    tax_amount: Decimal
    total: Decimal


def line_amount(unit_price: Decimal, quantity: int, currency: str) -> Decimal:
    """An invoice line's amount, rounded once to the currency's minor unit."""
    return quantize(unit_price * quantity, currency)


def invoice_totals(*, subtotal: Decimal, tax: TaxDecision, currency: str) -> InvoiceTotals:
    """The tax on the subtotal (rounded once) and the total an invoice asks for."""
    tax_amount = quantize(subtotal * tax.percent / 100, currency)
    return InvoiceTotals(subtotal=subtotal, tax_amount=tax_amount, total=subtotal + tax_amount)


def seller_country() -> str:
    return (settings.BILLING_SELLER_COUNTRY or "").strip().upper()


def tax_rule(*, country: str, profile_type: str, verified_company_with_vat: bool,
             rates: dict[str, TaxRate]) -> TaxDecision:
    """The staff rate for (country, profile type), else (country, any) — `rates` are the country's
    `TaxRate` rows by profile type. A rate marked reverse charge applies only to a staff-verified
    company with a VAT number across an EU border from the seller (`BILLING_SELLER_COUNTRY`; NL→NL
    pays NL VAT) — 0% with a reverse-charge note; otherwise the next rate in line applies. With no
    applicable rate: a verified VAT-registered EU company across the border is reverse charged; any
    other EU customer is refused (`TaxNotConfigured`); outside the EU no tax. An empty seller country
    turns the EU rules off (only the configured rates apply)."""
    country = (country or "").strip().upper()
    seller = seller_country()
    cross_border_eu = country in EU_COUNTRIES and country != seller
    reverse_charge_allowed = verified_company_with_vat and (cross_border_eu or not seller)
    reverse_charge = TaxDecision(Decimal("0"), _("Reverse charge: VAT to be accounted for by the recipient"), True)
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
    return NO_TAX
