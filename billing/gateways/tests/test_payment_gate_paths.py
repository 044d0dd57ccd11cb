"""The payment gate holds on the automatic and balance paths too, not only on the invoice page: an
unverified company's balance is not applied to its invoices, auto-payment pays no open invoice and
charges no card, until staff verify the company."""
from decimal import Decimal

import pytest

from accounts.models import Customer
from billing.gateways import services
from billing.gateways.models import AutopayCharge, PaymentAttempt
from billing.models import Invoice
from billing.selectors import balance_of
from billing.services.errors import PaymentBlocked
from billing.services.invoices import invoice_apply_balance, invoice_pay_from_balance
from billing.services.payments import invoices_pay_from_balance


@pytest.fixture
def unverified_company(customer):
    customer.profile_type = Customer.ProfileType.COMPANY
    customer.company_name = "Unverified Ltd"
    customer.verification_status = Customer.Verification.PENDING
    customer.save()
    return customer


def verify(customer):
    Customer.objects.filter(pk=customer.pk).update(verification_status=Customer.Verification.VERIFIED)
    customer.refresh_from_db()


@pytest.mark.django_db
def test_balance_is_not_applied_to_an_unverified_companys_invoice(gateways_on, unverified_company, make_invoice, fund):
    fund(unverified_company, "10.00")
    invoice = make_invoice(unverified_company, "25.00")

    with pytest.raises(PaymentBlocked):
        invoice_apply_balance(invoice=invoice)
    assert invoice_pay_from_balance(invoice=invoice) is False

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNPAID and invoice.amount_paid == 0
    assert balance_of(unverified_company) == Decimal("10.00")


@pytest.mark.django_db
def test_auto_payment_pays_no_open_invoice_of_an_unverified_company(gateways_on, unverified_company, make_invoice, fund):
    invoice = make_invoice(unverified_company, "25.00", kind=Invoice.Kind.RENEWAL)
    fund(unverified_company, "100.00")  # a top-up triggers auto-payment of open invoices after commit

    assert invoices_pay_from_balance(customer=unverified_company) == 0
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNPAID and balance_of(unverified_company) == Decimal("100.00")

    verify(unverified_company)
    assert invoices_pay_from_balance(customer=unverified_company) == 1
    assert balance_of(unverified_company) == Decimal("75.00")


@pytest.mark.django_db
def test_card_auto_payment_charges_nothing_for_an_unverified_company(gateways_on, unverified_company, sandbox_card):
    services.card_auto_top_up_configure(customer=unverified_company, enabled=True, method=sandbox_card(),
                               monthly_limit=Decimal("100.00"))

    assert services.card_auto_top_up_charge(customer=unverified_company, needed_amount=Decimal("30.00"), reason="renewal") is False
    assert not AutopayCharge.objects.exists() and not PaymentAttempt.objects.exists()

    verify(unverified_company)
    assert services.card_auto_top_up_charge(customer=unverified_company, needed_amount=Decimal("30.00"), reason="renewal") is True
    assert balance_of(unverified_company) == Decimal("30.00")
