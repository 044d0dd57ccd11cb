from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, InternalError, connection, transaction

from accounts.tests.factories import UserFactory
from billing.models import Invoice, LedgerAccount, LedgerEntry, LedgerTransaction
from billing.selectors import balance_of
from billing.services.invoices import (
    LineInput, invoice_apply_balance, invoice_cancel, invoice_issue, invoice_pay_from_balance,
)
from billing.services.ledger import customer_account, provider_account
from billing.services.payments import payment_record

from .concurrency import run_concurrently
from .factories import make_currencies


def _issue(customer, price, key=None):
    return invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, idempotency_key=key,
                         lines=[LineInput(description="VPS S", quantity=1, unit_price=Decimal(price))])


@pytest.mark.django_db(transaction=True)
def test_fifty_threads_spend_a_tenth_each_exactly_ten_succeed():
    make_currencies()
    customer = UserFactory().customer
    payment_record(idempotency_key="seed", customer=customer, amount=Decimal("100.00"), currency="EUR", method="bank_transfer")
    invoices = [_issue(customer, "10.00") for _ in range(50)]
    results, errors = run_concurrently(lambda invoice: invoice_pay_from_balance(invoice=invoice),
                                       [(inv,) for inv in invoices])
    assert errors == []
    assert results.count(True) == 10 and results.count(False) == 40
    assert balance_of(customer) == Decimal("0")
    account = LedgerAccount.objects.get(customer=customer)
    assert not LedgerEntry.objects.filter(account=account, balance_after__lt=0).exists()
    assert Invoice.objects.filter(customer=customer, status=Invoice.Status.PAID).count() == 10
    call_command("audit_ledger")


@pytest.mark.django_db(transaction=True)
def test_unbalanced_transaction_is_refused():
    make_currencies()
    customer = UserFactory().customer
    account = customer_account(customer=customer)
    with pytest.raises((IntegrityError, InternalError), match="does not balance"):
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO billing_ledgertransaction (idempotency_key, kind, created_at, reference, memo, rate_from, rate_to)"
                    " VALUES ('raw-unbalanced', 'adjustment', now(), '', '', '', '') RETURNING id"
                )
                tx_id = cursor.fetchone()[0]
                cursor.execute(
                    "INSERT INTO billing_ledgerentry (transaction_id, account_id, amount, currency, balance_after)"
                    " VALUES (%s, %s, 5, 'EUR', 5)", [tx_id, account.pk],
                )
            # The statement-level trigger checks at the end of the INSERT (migration 0009).
    assert not LedgerTransaction.objects.filter(idempotency_key="raw-unbalanced").exists()


@pytest.mark.django_db(transaction=True)
def test_one_statement_is_checked_per_transaction_and_per_leg_currency():
    """One INSERT with the legs of several transactions: the balanced ones alone pass; one unbalanced
    transaction or one leg in another currency than its account refuses the whole statement."""
    make_currencies()
    # Provider accounts: raw legs on a customer's balance would also need the expense funding that only
    # the posting paths write (billing.funding), and audit_ledger runs after this test.
    account = provider_account(kind=LedgerAccount.Kind.ADJUSTMENT, currency="EUR")
    other = provider_account(kind=LedgerAccount.Kind.HOLDING, currency="EUR")
    posted = []

    def post(*legs):
        posted.append(legs)
        with transaction.atomic(), connection.cursor() as cursor:
            ids = []
            for n in range(2):
                cursor.execute(
                    "INSERT INTO billing_ledgertransaction (idempotency_key, kind, created_at, reference, memo, rate_from,"
                    " rate_to) VALUES (%s, 'adjustment', now(), '', '', '', '') RETURNING id", [f"raw-{len(posted)}-{n}"])
                ids.append(cursor.fetchone()[0])
            running, rows = {}, []  # balance_after as the posting code writes it (audit_ledger checks it)
            for tx, acc, amount, currency in legs:
                running[acc.pk] = running.get(acc.pk, 0) + amount
                rows.append(cursor.mogrify("(%s, %s, %s, %s, %s)", [ids[tx], acc.pk, amount, currency, running[acc.pk]]))
            values = ", ".join(row.decode() for row in rows)
            cursor.execute("INSERT INTO billing_ledgerentry (transaction_id, account_id, amount, currency, balance_after)"
                           f" VALUES {values}")

    # Each account ends where it started, so the cached balances stay true.
    post((0, account, 5, "EUR"), (0, other, -5, "EUR"), (1, other, 5, "EUR"), (1, account, -5, "EUR"))
    with pytest.raises((IntegrityError, InternalError), match="does not balance"):
        post((0, account, 5, "EUR"), (0, other, -5, "EUR"), (1, other, 2, "EUR"), (1, account, -1, "EUR"))
    with pytest.raises((IntegrityError, InternalError), match="differs from its account"):
        post((0, account, 5, "USD"), (0, other, -5, "USD"))
    assert LedgerTransaction.objects.filter(idempotency_key__startswith="raw-").count() == 2


@pytest.mark.django_db
def test_ledger_rows_refuse_update_and_delete(currencies, customer, fund):
    fund(customer, "10.00")
    entry = LedgerEntry.objects.first()
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic():
            LedgerEntry.objects.filter(pk=entry.pk).update(amount=Decimal("99"))
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic():
            LedgerEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic():
            LedgerTransaction.objects.filter(pk=entry.transaction_id).update(memo="rewritten")


@pytest.mark.django_db
def test_balance_cannot_go_below_credit_limit_in_database(currencies, customer):
    account = customer_account(customer=customer)
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            LedgerAccount.objects.filter(pk=account.pk).update(balance=Decimal("-0.01"))


@pytest.mark.django_db
def test_pay_from_balance_partial_and_full(currencies, customer, fund):
    fund(customer, "30.00")
    invoice = _issue(customer, "50.00")
    assert invoice_pay_from_balance(invoice=invoice) is False
    assert balance_of(customer) == Decimal("30.00")
    applied = invoice_apply_balance(invoice=invoice)
    invoice.refresh_from_db()
    assert applied == Decimal("30.00") and invoice.amount_due == Decimal("20.00")
    assert invoice.status == Invoice.Status.IN_PROGRESS and balance_of(customer) == 0
    payment_record(idempotency_key="card-1", customer=customer, amount=Decimal("20.00"), currency="EUR",
                   method="bank_transfer", invoice=invoice)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID and invoice.amount_due == 0
    revenue = LedgerAccount.objects.get(code="revenue:EUR")
    assert revenue.balance == Decimal("50.00")
    call_command("audit_ledger")


@pytest.mark.django_db
def test_invoice_paid_hook_runs_inside_paying_transaction(currencies, customer, fund):
    from billing import hooks

    seen = []
    hooks.register_invoice_paid_handler("renewal", lambda inv: seen.append((inv.pk, inv.status)))
    fund(customer, "20.00")
    invoice = invoice_issue(customer=customer, kind=Invoice.Kind.RENEWAL,
                            lines=[LineInput(description="Renewal", quantity=2, unit_price=Decimal("5.00"))])
    assert invoice_pay_from_balance(invoice=invoice) is True
    assert seen == [(invoice.pk, Invoice.Status.PAID)]
    assert invoice_pay_from_balance(invoice=invoice) is False  # already paid: nothing changes
    assert balance_of(customer) == Decimal("10.00")


@pytest.mark.django_db
def test_cancel_returns_applied_balance(currencies, customer, fund):
    fund(customer, "5.00")
    invoice = _issue(customer, "50.00")
    invoice_apply_balance(invoice=invoice)
    assert balance_of(customer) == 0
    invoice_cancel(invoice=invoice, reason="changed my mind")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.CANCELLED and balance_of(customer) == Decimal("5.00")
    call_command("audit_ledger")
