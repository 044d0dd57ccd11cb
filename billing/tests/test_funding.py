"""Expense funding: stored when money is spent, equal to the FIFO replay, backfilled, audited."""
import importlib
import re
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.funding import funding_mismatches
from billing.models import BalanceFunding, Invoice, LedgerAccount, LedgerTransaction
from billing.selectors import expense_history
from billing.services import corrections, currency, invoices, ledger, payments, refunds
from core.keyset import Cursor

from .concurrency import run_concurrently
from .factories import make_currencies

ROW = ("transaction_id", "debit_id", "account_id", "source_id", "source_kind", "payment_id", "amount", "currency", "expense")


def _issue(customer, price: str) -> Invoice:
    return invoices.invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                                  lines=[invoices.LineInput(description=f"VPS {price}", quantity=1, unit_price=Decimal(price))])


def _rows(**filters) -> list[tuple]:
    return sorted(BalanceFunding.objects.filter(**filters).values_list(*ROW), key=str)


def _parts(invoice) -> list[tuple]:
    """(payment id or source kind, amount) of the funding of the invoice's charges, in posting order."""
    return [(row.payment_id or row.source_kind or "credit", row.amount)
            for row in BalanceFunding.objects.filter(transaction__invoice=invoice, expense=True).order_by("pk")]


def _history_of_every_shape(customer, fund):
    """Top-ups in two currencies, charges across them, a partial application then a cancellation
    (reversal), a credit note to the balance, a refund sent back to the bank, a direct payment, a
    charge on credit, and a change of the account currency."""
    staff = StaffUserFactory()
    eur = fund(customer, "30.00")
    usd = fund(customer, "20.00", currency="USD")  # converted into the EUR balance at the payment's rate
    converted = usd.credited_amount
    first = _issue(customer, "25.00")
    assert invoices.invoice_pay_from_balance(invoice=first)
    second = _issue(customer, "10.00")
    assert invoices.invoice_pay_from_balance(invoice=second)
    partial = _issue(customer, "500.00")
    applied = invoices.invoice_apply_balance(invoice=partial)  # takes what is left
    invoices.invoice_cancel(invoice=partial, reason="changed my mind")  # the applied amount comes back (reversal)
    corrections.credit_note_issue(invoice=first, reason="outage", actor=staff, amount=Decimal("5.00"))  # refund to balance
    third = _issue(customer, "7.00")
    assert invoices.invoice_pay_from_balance(invoice=third)
    later = fund(customer, "40.00")
    refund = refunds.payment_refund_reserve(payment=later, amount=Decimal("15.00"), reason="asked back", actor=staff)
    refunds.payment_refund_complete(refund=refund, external_id="bank-1", actor=staff)  # the balance part: a non-expense debit
    direct = _issue(customer, "12.00")
    card = payments.payment_record(idempotency_key="direct-card", customer=customer, amount=Decimal("12.00"),
                                   currency="EUR", method="card", gateway="sandbox", external_id="ch_1", invoice=direct)
    LedgerAccount.objects.filter(customer=customer).update(credit_limit=Decimal("50.00"))
    on_credit = _issue(customer, "45.00")
    assert invoices.invoice_pay_from_balance(invoice=on_credit)
    fund(customer, "100.00")
    quote = currency.account_currency_change_preview(customer=customer, currency="USD").quote
    currency.account_currency_change(customer=customer, currency="USD", expected_rate=quote.rate)
    customer.refresh_from_db()
    usd_invoice = invoices.invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                                         lines=[invoices.LineInput(description="VPS in dollars", quantity=1, unit_price=Decimal("9.00"))])
    assert invoices.invoice_pay_from_balance(invoice=usd_invoice)
    return {"eur": eur, "usd": usd, "converted": converted, "first": first, "second": second, "partial": partial,
            "applied": applied, "third": third, "direct": direct, "card": card, "on_credit": on_credit, "usd_invoice": usd_invoice}


@pytest.mark.django_db
def test_funding_is_stored_fifo_for_every_shape_and_equals_the_replay(currencies, customer, fund):
    h = _history_of_every_shape(customer, fund)
    converted = h["converted"]
    # 30.00 EUR then the converted USD top-up: the first charge takes the EUR top-up whole and the rest from USD.
    assert _parts(h["first"]) == [(h["eur"].pk, Decimal("25.00"))]
    assert _parts(h["second"]) == [(h["eur"].pk, Decimal("5.00")), (h["usd"].pk, Decimal("5.00"))]
    # The partial application empties the queue (what is left of the USD top-up), then comes back as a reversal.
    assert h["applied"] == converted - Decimal("5.00")
    assert _parts(h["partial"]) == [(h["usd"].pk, h["applied"])]
    # The next charge is funded by the oldest credit left: the reversal, before the credit note's refund.
    assert _parts(h["third"]) == [(LedgerTransaction.Kind.REVERSAL, Decimal("7.00"))]
    assert _parts(h["direct"]) == [(h["card"].pk, Decimal("12.00"))]
    on_credit = _parts(h["on_credit"])
    assert on_credit[-1][0] == "credit" and sum(amount for _source, amount in on_credit) == Decimal("45.00")
    # Paid from the USD account after the switch: funded by the conversion's credit.
    assert _parts(h["usd_invoice"]) == [(LedgerTransaction.Kind.CONVERSION, Decimal("9.00"))]
    # Debits that are not expenses (the refund sent back, the conversion out) use the queue but are not shown.
    assert BalanceFunding.objects.filter(expense=False, transaction__kind=LedgerTransaction.Kind.REFUND).exists()
    assert BalanceFunding.objects.filter(expense=False, transaction__kind=LedgerTransaction.Kind.CONVERSION).exists()
    assert funding_mismatches() == []


@pytest.mark.django_db
def test_migration_backfill_rebuilds_what_the_postings_stored(currencies, customer, fund):
    _history_of_every_shape(customer, fund)
    other = UserFactory().customer
    fund(other, "10.00")
    invoices.invoice_pay_from_balance(invoice=_issue(other, "4.00"))
    stored = _rows()
    assert len(stored) > 10
    BalanceFunding.objects.all().delete()  # as before the migration: a ledger without funding rows
    migration = importlib.import_module("billing.migrations.0011_balance_funding")
    migration.backfill(apps, connection.schema_editor())
    assert _rows() == stored
    assert funding_mismatches() == []


@pytest.mark.django_db
@pytest.mark.ledger_corrupted_on_purpose
@pytest.mark.parametrize("corruption", ["amount", "order", "missing", "extra"])
def test_audit_ledger_catches_funding_that_is_not_the_fifo(currencies, customer, fund, corruption):
    first, second = fund(customer, "10.00"), fund(customer, "10.00")
    invoice = _issue(customer, "15.00")
    invoices.invoice_pay_from_balance(invoice=invoice)
    call_command("audit_ledger")
    parts = list(BalanceFunding.objects.filter(transaction__invoice=invoice).order_by("pk"))
    assert [(p.payment_id, p.amount) for p in parts] == [(first.pk, Decimal("10.00")), (second.pk, Decimal("5.00"))]
    if corruption == "amount":
        BalanceFunding.objects.filter(pk=parts[1].pk).update(amount=Decimal("4.00"))
    elif corruption == "order":  # the same total, but the newer top-up said to go first
        BalanceFunding.objects.filter(pk=parts[0].pk).update(amount=Decimal("5.00"))
        BalanceFunding.objects.filter(pk=parts[1].pk).update(amount=Decimal("10.00"))
    elif corruption == "missing":
        BalanceFunding.objects.filter(pk=parts[1].pk).delete()
    else:
        BalanceFunding.objects.create(customer=customer, transaction_id=parts[0].transaction_id, debit_id=parts[0].debit_id,
                                      account_id=parts[0].account_id, amount=Decimal("1.00"), currency="EUR", expense=True)
    with pytest.raises(CommandError) as failed:
        call_command("audit_ledger")
    message = str(failed.value)
    assert "[funding]" in message and f"transaction #{parts[0].transaction_id}" in message


@pytest.mark.django_db
def test_a_charge_reads_only_the_queue_head_whatever_the_history(currencies, customer, fund):
    from django.test.utils import CaptureQueriesContext

    from billing.funding import _queues

    def statements_to_pay(price):
        invoice = _issue(customer, price)
        with CaptureQueriesContext(connection) as queries:
            assert invoices.invoice_pay_from_balance(invoice=invoice)
        return len(queries)

    fund(customer, "3.00")
    statements_to_pay("1.00")  # the first charge creates the provider accounts
    short = statements_to_pay("1.00")
    for _ in range(30):
        fund(customer, "3.00")
        invoices.invoice_pay_from_balance(invoice=_issue(customer, "3.00"))
    account = ledger.customer_account(customer=customer)
    fund(customer, "5.00")
    queue = _queues([account.pk], before=10**12)[account.pk]
    assert [(left, leg.amount) for left, leg in queue] == [(Decimal("1.00"), Decimal("3.00")), (Decimal("5.00"), Decimal("5.00"))]
    assert statements_to_pay("4.00") == short
    assert funding_mismatches() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_charges_on_one_balance_store_the_fifo():
    make_currencies()
    customer = UserFactory().customer
    for n in range(4):
        payments.payment_record(idempotency_key=f"c:{n}", customer=customer, amount=Decimal("7.00"), currency="EUR",
                                method="bank_transfer")
    bills = [_issue(customer, "3.00") for _ in range(8)]

    def pay(invoice):
        return invoices.invoice_pay_from_balance(invoice=invoice)

    results, errors = run_concurrently(pay, [(invoice,) for invoice in bills])
    assert errors == [] and all(results)
    assert funding_mismatches() == []
    assert sum(BalanceFunding.objects.filter(expense=True).values_list("amount", flat=True)) == Decimal("24.00")


@pytest.mark.django_db
def test_expenses_page_shows_the_stored_funding_newest_first_by_keyset(currencies, client_in, customer, fund):
    topup = fund(customer, "100.00")
    bills = [_issue(customer, "2.00") for _ in range(25)]
    for invoice in bills:
        invoices.invoice_pay_from_balance(invoice=invoice)
    url = reverse("billing:expenses")
    first = client_in.get(url).content.decode()
    shown = [int(pk) for pk in re.findall(r'data-expense="(\d+)"', first)]
    charges = list(LedgerTransaction.objects.filter(invoice__in=bills).order_by("-pk").values_list("pk", flat=True))
    assert shown == charges[:20]
    assert f"Payment #{topup.pk} (Bank transfer)" in first and bills[-1].number in first
    older = re.search(r'href="([^"]*)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client_in.get(url + older).content.decode()
    assert [int(pk) for pk in re.findall(r'data-expense="(\d+)"', second)] == charges[20:]
    page = expense_history(customer=customer, cursor=Cursor(), size=20)
    assert page[0].amount == Decimal("2.00") and page[0].name == "VPS 2.00" and page[0].invoice == (bills[-1].pk, bills[-1].number)


@pytest.mark.django_db
def test_expense_pages_read_their_range_with_each_invoice_s_lines_in_order(currencies, customer, fund):
    """A page's funding is read as the range between its first and last key, the name as the invoice's
    lines joined in line order (else its number, else the memo): every page of two equals the whole list."""
    _history_of_every_shape(customer, fund)
    fund(customer, "50.00")
    several = invoices.invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, lines=[
        invoices.LineInput(description=name, quantity=1, unit_price=Decimal("2.00")) for name in ("Disk", "VPS", "IPv4")])
    assert invoices.invoice_pay_from_balance(invoice=several)
    everything = list(expense_history(customer=customer, cursor=Cursor(), size=100))
    for expense in everything:
        tx = LedgerTransaction.objects.select_related("invoice").get(pk=expense.transaction_id)
        lines = list(tx.invoice.lines.order_by("position", "pk").values_list("description", flat=True)) if tx.invoice_id else []
        assert expense.name == ("; ".join(lines) or (tx.invoice.number if tx.invoice_id else tx.memo))
        assert expense.funding == [{"amount": part.amount, "currency": part.currency, "payment": (part.payment_id, part.payment.method)
                                    if part.payment_id else None, "label": None if part.payment_id else _label(part.source_kind)}
                                   for part in BalanceFunding.objects.filter(transaction=tx, expense=True).order_by("pk")]
    assert everything[0].name == "Disk; VPS; IPv4"
    walked, cursor = [], Cursor()
    while True:
        page = expense_history(customer=customer, cursor=cursor, size=2)
        walked += page
        if not page.has_older:
            break
        cursor = Cursor(before=page[-1].transaction_id)
    assert walked == everything and len(everything) > 6


def _label(source_kind: str) -> str:
    return str(LedgerTransaction.Kind(source_kind).label) if source_kind else "Credit"
