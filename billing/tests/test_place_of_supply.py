"""VAT place of supply with a seller in NL: a payer's country counts only with evidence (the profile's
country, a verified company, or staff approval); reverse charge only across an EU border for verified
VAT-registered companies; an EU customer whose country has no configured rate gets no invoice rather
than a 0% one."""
from decimal import Decimal

import pytest

from accounts.models import Customer
from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import Invoice
from billing.services.invoices import LineInput, invoice_issue, invoice_payer_choose, invoice_topup_create
from billing.services.payers import payer_country_approve, payer_create, payer_update, payer_verify
from billing.tax import TaxNotConfigured
from billing.tests.factories import CompanyPayerFactory, TaxRateFactory


@pytest.fixture(autouse=True)
def seller_in_nl(settings, currencies):
    settings.BILLING_SELLER_COUNTRY = "NL"
    TaxRateFactory(country="NL", percent=Decimal("21"))
    TaxRateFactory(country="NL", profile_type="company", percent=Decimal("0"), reverse_charge=True)
    TaxRateFactory(country="DE", percent=Decimal("19"))
    TaxRateFactory(country="DE", profile_type="company", percent=Decimal("0"), reverse_charge=True)


@pytest.fixture
def staff(db):
    return StaffUserFactory()


def customer_in(country: str, *, company: bool = False, verified: bool = False) -> Customer:
    customer = UserFactory().customer
    customer.country = country
    if company:
        customer.profile_type = Customer.ProfileType.COMPANY
        customer.company_name, customer.company_vat_number = "Acme B.V.", f"{country}123456789B01"
        customer.verification_status = Customer.Verification.VERIFIED if verified else Customer.Verification.PENDING
    customer.save()
    return customer


def issue(customer: Customer) -> Invoice:
    return invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                         lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal("100.00"))])


@pytest.mark.django_db
def test_a_payer_typed_in_another_country_does_not_move_the_tax_without_evidence(staff):
    dutch = customer_in("NL")
    invoice = issue(dutch)
    assert invoice.total == Decimal("121.00")
    american = payer_create(customer=dutch, data={"payer_type": "private", "name": "John Doe", "street": "1 Main St",
                                                  "city": "Springfield", "country": "US"})

    invoice = invoice_payer_choose(invoice=invoice, payer=american)
    assert (invoice.payer_country, invoice.tax_percent, invoice.total) == ("US", Decimal("21"), Decimal("121.00"))

    # Staff saw evidence (e.g. the card's billing address): the payer's country decides from now on.
    payer_country_approve(payer=american, staff=staff)
    invoice = invoice_payer_choose(invoice=invoice, payer=american)
    assert (invoice.tax_percent, invoice.total) == (Decimal("0"), Decimal("100.00"))

    # Another country typed later needs new evidence.
    payer_update(payer=american, data={"payer_type": "private", "name": "John Doe", "street": "1 Rue",
                                       "city": "Geneva", "country": "CH"})
    invoice = invoice_payer_choose(invoice=invoice, payer=american)
    assert invoice.total == Decimal("121.00")


@pytest.mark.django_db
def test_a_verified_company_payer_abroad_is_evidence_itself(staff):
    dutch = customer_in("NL")
    german_company = payer_verify(payer=CompanyPayerFactory(customer=dutch, country="DE"), staff=staff)

    invoice = invoice_payer_choose(invoice=issue(dutch), payer=german_company)

    assert (invoice.reverse_charge, invoice.total) == (True, Decimal("100.00"))


@pytest.mark.django_db
def test_reverse_charge_only_across_an_eu_border():
    domestic = issue(customer_in("NL", company=True, verified=True))
    assert (domestic.reverse_charge, domestic.tax_percent, domestic.total) == (False, Decimal("21"), Decimal("121.00"))

    cross_border = issue(customer_in("DE", company=True, verified=True))
    assert (cross_border.reverse_charge, cross_border.total) == (True, Decimal("100.00"))

    unverified = issue(customer_in("DE", company=True, verified=False))
    assert (unverified.reverse_charge, unverified.total) == (False, Decimal("119.00"))

    # A verified VAT-registered company in an EU country with no rate configured is reverse charged.
    austrian = issue(customer_in("AT", company=True, verified=True))
    assert (austrian.reverse_charge, austrian.total) == (True, Decimal("100.00"))


@pytest.mark.django_db
def test_an_eu_private_customer_without_a_configured_rate_is_refused_an_invoice():
    austrian = customer_in("AT")

    with pytest.raises(TaxNotConfigured) as refused:
        issue(austrian)

    assert "no VAT rate is configured for it" in str(refused.value) and "AT" in str(refused.value)
    assert not Invoice.objects.filter(customer=austrian).exists()
    # Outside the EU nothing is due; a top-up (no tax) is always possible.
    assert issue(customer_in("US")).total == Decimal("100.00")
    assert invoice_topup_create(customer=austrian, amount=Decimal("50.00"), currency="EUR").total == Decimal("50.00")
