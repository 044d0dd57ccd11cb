from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.tests.factories import UserFactory
from billing.models import Invoice, LedgerTransaction, Payment
from billing.selectors import balance_of
from billing.services.errors import BillingError, PaymentBlocked, PaymentConflict
from billing.services.invoices import LineInput, invoice_issue, invoice_topup_create
from billing.services.payers import invoice_payment_gate_check
from billing.services.payments import payment_record

from .concurrency import run_concurrently
from .factories import make_currencies


def _record(customer, key="gw:tx-1", amount="25.00", **kw):
    return payment_record(idempotency_key=key, customer=customer, amount=Decimal(amount), currency=kw.pop("currency", "EUR"),
                          method="bank_transfer", **kw)


@pytest.mark.django_db
def test_same_key_twice_credits_once(currencies, customer):
    first = _record(customer)
    second = _record(customer)
    assert first.pk == second.pk
    assert Payment.objects.count() == 1
    assert balance_of(customer) == Decimal("25.00")


@pytest.mark.django_db
def test_same_key_with_different_amount_is_rejected(currencies, customer):
    _record(customer)
    with pytest.raises(PaymentConflict):
        _record(customer, amount="25.01")
    assert balance_of(customer) == Decimal("25.00")


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0", "-5.00", "10.001"])
def test_bad_amounts_are_refused(currencies, customer, amount):
    with pytest.raises(BillingError):
        _record(customer, amount=amount)
    assert not Payment.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_same_key_concurrently_credits_once():
    make_currencies()
    customer = UserFactory().customer
    results, errors = run_concurrently(lambda: _record(customer, key="webhook:evt-42").pk, [()] * 12)
    assert errors == []
    assert len(set(results)) == 1 and len(results) == 12
    assert Payment.objects.count() == 1
    assert LedgerTransaction.objects.filter(payment__isnull=False).count() == 1
    assert balance_of(customer) == Decimal("25.00")
    call_command("audit_ledger")


@pytest.mark.django_db
def test_payment_for_advance_invoice_credits_balance_and_marks_paid(currencies, customer):
    invoice = invoice_topup_create(customer=customer, amount=Decimal("40.00"), currency="EUR")
    _record(customer, amount="40.00", invoice=invoice)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert balance_of(customer) == Decimal("40.00")
    call_command("audit_ledger")


@pytest.mark.django_db
def test_direct_payment_of_service_invoice_goes_to_revenue_not_balance(currencies, customer):
    invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                            lines=[LineInput(description="Dedicated X1", quantity=1, unit_price=Decimal("80.00"))])
    _record(customer, amount=str(invoice.total), invoice=invoice)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID and balance_of(customer) == 0
    call_command("audit_ledger")


@pytest.mark.django_db
def test_payment_gate_blocks_incomplete_profile(currencies):
    owner = UserFactory(first_name="")
    invoice = invoice_issue(customer=owner.customer, kind=Invoice.Kind.ORDER,
                            lines=[LineInput(description="VPS S", quantity=1, unit_price=Decimal("5.00"))])
    with pytest.raises(PaymentBlocked) as exc:
        invoice_payment_gate_check(invoice)
    assert exc.value.blockers[0]["url"]
