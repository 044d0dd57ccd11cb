"""One lock order everywhere (issue 15, item 11): an account currency change racing a payment of the
same customer, in real parallel transactions, neither deadlocks nor fails."""
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import OperationalError

from accounts.tests.factories import UserFactory
from billing.models import Invoice
from billing.services.currency import account_currency_change, account_currency_change_preview
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
from billing.services.payments import payment_record

from .concurrency import run_concurrently
from .factories import make_currencies

ROUNDS = 8


def _pay_invoice_by_bank(customer, invoice):
    return payment_record(idempotency_key=f"bank:{invoice.pk}", customer=customer, amount=Decimal("30.00"),
                          currency="EUR", method="bank_transfer", invoice=invoice)


def _top_up(customer, invoice):
    # Credits the balance, then pays open invoices after commit (auto-payment).
    return payment_record(idempotency_key=f"topup:{customer.pk}", customer=customer, amount=Decimal("30.00"),
                          currency="EUR", method="bank_transfer")


def _top_up_in_the_new_currency(customer, invoice):
    return payment_record(idempotency_key=f"topup:{customer.pk}", customer=customer, amount=Decimal("30.00"),
                          currency="USD", method="bank_transfer")


def _pay_from_balance(customer, invoice):
    return invoice_pay_from_balance(invoice=invoice)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("payment", [_pay_invoice_by_bank, _top_up, _top_up_in_the_new_currency, _pay_from_balance],
                         ids=lambda f: f.__name__.strip("_"))
def test_currency_change_and_a_payment_of_the_same_customer_never_deadlock(payment):
    make_currencies()
    errors = []
    for n in range(ROUNDS):
        customer = UserFactory().customer
        payment_record(idempotency_key=f"seed:{customer.pk}", customer=customer, amount=Decimal("100.00"),
                       currency="EUR", method="bank_transfer")
        invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, currency="EUR",
                                lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal("30.00"))])
        rate = account_currency_change_preview(customer=customer, currency="USD").quote.rate

        def change(customer, invoice):
            return account_currency_change(customer=customer, currency="USD", expected_rate=rate)

        _results, round_errors = run_concurrently(lambda f, *a: f(*a), [(change, customer, invoice), (payment, customer, invoice)])
        errors += round_errors
    assert not [e for e in errors if isinstance(e, OperationalError)], errors  # "deadlock detected" is a 500
    assert errors == []
    call_command("audit_ledger")
