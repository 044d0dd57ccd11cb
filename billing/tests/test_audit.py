"""audit_ledger catches the classes of mistakes found in issue 15 (each test breaks the ledger on purpose,
so the automatic audit after the test is off for them)."""
import threading
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from accounts.models import Customer
from accounts.tests.factories import StaffUserFactory
from billing import audit
from billing.models import CreditNote, Invoice, LedgerAccount, LedgerTransaction
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
from billing.services.ledger import customer_account, ledger_post, provider_account
from billing.services.payments import payment_record

pytestmark = [pytest.mark.django_db, pytest.mark.ledger_corrupted_on_purpose]


def _paid_invoice(customer, fund, amount="40.00"):
    fund(customer, amount)
    invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                            lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal(amount))])
    assert invoice_pay_from_balance(invoice=invoice)
    return invoice


def test_clearing_moved_without_a_payment_is_reported(currencies, customer):
    clearing = provider_account(kind=LedgerAccount.Kind.CLEARING, currency="EUR", tag="sandbox")
    ledger_post(idempotency_key="mistake:1", kind=LedgerTransaction.Kind.TOPUP,
                legs=[(clearing, Decimal("-100.00")), (customer_account(customer=customer), Decimal("100.00"))])

    assert any("without a payment" in failure for failure in audit.clearing_mismatches())
    with pytest.raises(CommandError, match=r"\[clearing\]"):
        call_command("audit_ledger")


def test_money_left_in_a_previous_currency_account_is_flagged(currencies, customer, fund):
    fund(customer, "51.07")
    Customer.objects.filter(pk=customer.pk).update(currency="USD")  # the race of issue 15 item 6

    assert audit.foreign_currency_balances() == [
        f"account customer:{customer.pk}:EUR: 51.0700 EUR left outside customer {customer.pk}'s account currency USD"]


def test_revenue_moved_off_a_paid_invoice_is_reported(currencies, customer, fund):
    invoice = _paid_invoice(customer, fund)
    revenue = provider_account(kind=LedgerAccount.Kind.REVENUE, currency="EUR")
    ledger_post(idempotency_key="mistake:2", kind=LedgerTransaction.Kind.REFUND, invoice=invoice,
                legs=[(revenue, Decimal("-40.00")), (customer_account(customer=customer), Decimal("40.00"))])

    failures = audit.invoice_recognition_mismatches()
    assert failures == [f"invoice {invoice.number} (paid): revenue 0.0000 and tax 0 recognised, expected 40.0000 and 0.0000"]


def test_credit_note_that_reverses_nothing_is_reported(currencies, customer, fund):
    invoice = _paid_invoice(customer, fund)
    adjustment = provider_account(kind=LedgerAccount.Kind.ADJUSTMENT, currency="EUR")
    tx = ledger_post(idempotency_key="mistake:3", kind=LedgerTransaction.Kind.REFUND, invoice=invoice,
                     legs=[(adjustment, Decimal("-40.00")), (customer_account(customer=customer), Decimal("40.00"))])
    CreditNote.objects.create(number="CN-2026-999999", invoice=invoice, customer=customer, amount=Decimal("40.00"),
                              currency="EUR", reason="forged", created_by=StaffUserFactory(), ledger_transaction=tx)

    failures = audit.credit_note_mismatches()
    assert f"invoice {invoice.number} is paid with 40.0000 of 40.0000 credited" in failures
    assert any(f.startswith("credit note CN-2026-999999: reverses revenue 0") for f in failures)


def test_refunded_amount_without_ledger_movement_is_reported(currencies, customer, fund):
    payment = fund(customer, "10.00")
    type(payment).objects.filter(pk=payment.pk).update(refunded_amount=Decimal("10.00"))  # refunded without the ledger

    failures = audit.clearing_mismatches()
    assert any(f"payment #{payment.pk}" in f and "clearing moved -10" in f for f in failures)


@pytest.mark.django_db(transaction=True)
def test_a_payment_committed_while_the_audit_reads_is_wholly_seen_or_not(currencies, customer, fund, monkeypatch):
    """The clearing check reads the clearing accounts' ids, then their legs. A payment through a new gateway
    that commits in between (its clearing account is new) must not show up as a payment without clearing legs:
    the audit reads one snapshot."""
    fund(customer, "10.00")
    read_ids, committed = audit._account_ids, []

    def pay():
        try:
            committed.append(payment_record(idempotency_key="race:new-gateway", customer=customer, amount=Decimal("12.00"),
                                            currency="EUR", method="card", gateway="newgateway"))
        finally:
            connections.close_all()

    def ids_then_a_payment_commits(kind):
        ids = read_ids(kind)
        if kind == LedgerAccount.Kind.CLEARING and not committed:
            thread = threading.Thread(target=pay)  # its own connection, committed before the legs are read
            thread.start()
            thread.join()
        return ids

    monkeypatch.setattr(audit, "_account_ids", ids_then_a_payment_commits)
    assert {check: failures for check, failures in audit.audit().items() if failures} == {}
    assert committed
    monkeypatch.undo()
    assert {check: failures for check, failures in audit.audit().items() if failures} == {}  # and seen by the next run
