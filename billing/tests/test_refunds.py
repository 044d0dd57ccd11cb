"""Money leaving or coming back (issue 15): refunds to the payment's origin on the ledger, credit notes
at the original rate, part-paid top-ups, captured money at stale rates. The ledger audit runs after
every test (billing/tests/audit_after_test.py)."""
import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from accounts.models import ActivityEvent
from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import CreditNote, Currency, Invoice, LedgerAccount, LedgerTransaction, Payment, PaymentRefund
from billing.rates import RateError, RateTable
from billing.selectors import balance_of
from billing.services.corrections import balance_write_off, credit_note_issue
from billing.services.currency import account_currency_change_preview
from billing.services.errors import BillingError, InsufficientFunds
from billing.services.invoices import (
    LineInput, invoice_cancel, invoice_issue, invoice_pay_from_balance, invoice_topup_create,
)
from billing.services.payments import payment_record
from billing.services.rates import currency_fixed_rate_set
from billing.services.refunds import (
    payment_refund_complete, payment_refund_fail, payment_refund_reserve, payment_refund_sent_by_bank,
)

from .concurrency import run_concurrently
from .factories import TaxRateFactory, make_currencies

NOW = dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def staff(db):
    return StaffUserFactory()


def _balance(code: str) -> Decimal:
    account = LedgerAccount.objects.filter(code=code).first()
    return account.balance if account else Decimal("0")


def _bank_payment(customer, amount, *, invoice=None, currency=None, key="bank-1"):
    return payment_record(idempotency_key=key, customer=customer, amount=Decimal(amount),
                          currency=currency or (invoice.currency if invoice else customer.currency),
                          method="bank_transfer", gateway="bank_transfer", invoice=invoice)


def _service_invoice(customer, amount, currency=None):
    return invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, currency=currency,
                         lines=[LineInput(description="VPS Standard", quantity=1, unit_price=Decimal(amount))])


def _rub_customer():
    customer = UserFactory().customer
    customer.currency = "RUB"
    customer.save(update_fields=["currency"])
    return customer


# --- item 1: refunds to the card or bank account leave through the ledger ------------------------------

@pytest.mark.django_db
def test_refund_of_a_topup_to_the_bank_takes_it_from_balance_and_clearing(currencies, customer, staff):
    payment = _bank_payment(customer, "100.00")
    assert balance_of(customer) == Decimal("100.00") and _balance("clearing:bank_transfer:EUR") == Decimal("-100.00")

    refund = payment_refund_sent_by_bank(payment=payment, amount=Decimal("100.00"), bank_reference="OUT-1",
                                         reason="Customer asked", actor=staff)

    assert refund.status == PaymentRefund.Status.SUCCEEDED and refund.external_id == "OUT-1"
    assert balance_of(customer) == 0 and _balance("clearing:bank_transfer:EUR") == 0
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("100.00") and payment.status == Payment.Status.REFUNDED
    assert ActivityEvent.objects.filter(action="billing.payment_refunded", customer=customer).exists()


@pytest.mark.django_db
def test_refund_of_a_paid_service_invoice_reverses_revenue_and_tax_not_the_balance(currencies, customer, staff):
    TaxRateFactory(country=customer.country, percent=Decimal("21"))
    invoice = _service_invoice(customer, "100.00")
    payment = _bank_payment(customer, str(invoice.total), invoice=invoice)
    assert invoice.total == Decimal("121.00") and _balance("revenue:EUR") == Decimal("100.00")

    refund = payment_refund_sent_by_bank(payment=payment, amount=Decimal("121.00"), bank_reference="OUT-2",
                                         reason="Order cancelled", actor=staff)

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.REFUNDED
    assert (_balance("revenue:EUR"), _balance("tax:EUR"), balance_of(customer)) == (0, 0, 0)
    note = refund.credit_note
    assert (note.amount, note.tax_amount, note.payment_id, note.invoice_id) == (Decimal("121.00"), Decimal("21.00"), payment.pk, invoice.pk)
    # The invoice's money went back to the bank: crediting the balance as well is refused.
    with pytest.raises(BillingError):
        credit_note_issue(invoice=invoice, reason="again", actor=staff)


@pytest.mark.django_db
def test_advance_invoice_refund_gets_a_credit_note_and_credit_note_to_balance_explains(currencies, customer, staff):
    invoice = invoice_topup_create(customer=customer, amount=Decimal("100.00"), currency="EUR")
    payment = _bank_payment(customer, "100.00", invoice=invoice)
    with pytest.raises(BillingError) as refused:
        credit_note_issue(invoice=Invoice.objects.get(pk=invoice.pk), reason="x", actor=staff)
    assert refused.value.code == "advance_to_balance"

    refund = payment_refund_sent_by_bank(payment=payment, amount=Decimal("100.00"), bank_reference="OUT-3",
                                         reason="Unused top-up", actor=staff)

    invoice.refresh_from_db()
    assert refund.credit_note.invoice_id == invoice.pk and refund.credit_note.amount == Decimal("100.00")
    assert invoice.status == Invoice.Status.REFUNDED and balance_of(customer) == 0


@pytest.mark.django_db
def test_refund_of_a_converted_topup_uses_the_payment_rate_and_the_last_takes_the_rest(currencies, staff):
    customer = _rub_customer()
    payment = _bank_payment(customer, "100.00", currency="EUR")
    assert payment.credited_amount == Decimal("9450.00") and balance_of(customer) == Decimal("9450.00")
    currency_fixed_rate_set(code="RUB", rate=Decimal("100"))  # the rate moved since

    payment_refund_sent_by_bank(payment=payment, amount=Decimal("33.33"), bank_reference="OUT-4a", reason="part", actor=staff)
    assert balance_of(customer) == Decimal("9450.00") - Decimal("3149.69")  # 33.33 × 94.5 = 3149.685
    payment_refund_sent_by_bank(payment=payment, amount=Decimal("66.67"), bank_reference="OUT-4b", reason="rest", actor=staff)

    assert balance_of(customer) == 0  # not 9450 − 10000: exactly what the payment brought goes back
    assert _balance("clearing:bank_transfer:EUR") == 0


@pytest.mark.django_db
def test_refund_key_is_stable_and_the_money_is_set_aside_before_anything_is_sent(currencies, customer, staff):
    payment = _bank_payment(customer, "50.00")

    refund = payment_refund_reserve(payment=payment, amount=Decimal("50.00"), reason="card refund", actor=staff)

    assert refund.idempotency_key == f"refund:{payment.pk}:1" and refund.status == PaymentRefund.Status.PENDING
    assert balance_of(customer) == 0 and _balance("refunding:EUR") == Decimal("50.00")  # the customer cannot spend it meanwhile
    invoice = _service_invoice(customer, "10.00")
    assert invoice_pay_from_balance(invoice=invoice) is False
    with pytest.raises(BillingError):  # nothing left to refund twice
        payment_refund_reserve(payment=payment, amount=Decimal("0.01"), reason="again", actor=staff)

    payment_refund_fail(refund=refund, message="card expired")  # the gateway refused: nothing left the system
    assert balance_of(customer) == Decimal("50.00") and _balance("refunding:EUR") == 0

    retry = payment_refund_reserve(payment=payment, amount=Decimal("50.00"), reason="by bank instead", actor=staff)
    assert retry.idempotency_key == f"refund:{payment.pk}:2"
    done = payment_refund_complete(refund=retry, external_id="OUT-5", actor=staff)
    assert payment_refund_complete(refund=retry, external_id="OUT-5", actor=staff).pk == done.pk  # completes once
    assert LedgerTransaction.objects.filter(idempotency_key=retry.idempotency_key).count() == 1
    assert balance_of(customer) == 0 and _balance("clearing:bank_transfer:EUR") == 0


@pytest.mark.django_db
def test_money_already_spent_cannot_be_refunded_from_the_balance(currencies, customer, staff):
    payment = _bank_payment(customer, "30.00")
    assert invoice_pay_from_balance(invoice=_service_invoice(customer, "20.00"))

    with pytest.raises(InsufficientFunds):
        payment_refund_reserve(payment=payment, amount=Decimal("30.00"), reason="all", actor=staff)

    assert not PaymentRefund.objects.exists() and balance_of(customer) == Decimal("10.00")


@pytest.mark.django_db(transaction=True)
def test_two_staff_refunding_the_same_payment_at_once_refund_it_once():
    make_currencies()
    customer = UserFactory().customer
    staff = StaffUserFactory()
    payment = _bank_payment(customer, "40.00")

    results, errors = run_concurrently(
        lambda: payment_refund_reserve(payment=payment, amount=Decimal("40.00"), reason="dup", actor=staff).pk, [()] * 6)

    assert len(results) == 1 and len(errors) == 5 and all(isinstance(e, BillingError) for e in errors)
    assert PaymentRefund.objects.get().idempotency_key == f"refund:{payment.pk}:1"
    assert balance_of(customer) == 0 and _balance("refunding:EUR") == Decimal("40.00")


@pytest.mark.django_db
def test_write_off_closes_every_balance_on_the_ledger(currencies, customer, staff):
    _bank_payment(customer, "12.34")

    first = balance_write_off(customer=customer, reason="Account closed", actor=staff, idempotency_key="close:1")
    again = balance_write_off(customer=customer, reason="Account closed", actor=staff, idempotency_key="close:1")

    assert [tx.pk for tx in first] == [tx.pk for tx in again]
    assert balance_of(customer) == 0 and _balance("adjustment:writeoff:EUR") == Decimal("12.34")


# --- item 5: a part-paid top-up credits what was paid -------------------------------------------------

@pytest.mark.django_db
def test_part_paid_topup_credits_what_was_paid(currencies, customer):
    invoice = invoice_topup_create(customer=customer, amount=Decimal("1000.00"), currency="EUR")

    _bank_payment(customer, "400.00", invoice=invoice, key="bank-part-1")

    invoice.refresh_from_db()
    assert balance_of(customer) == Decimal("400.00")
    assert invoice.status == Invoice.Status.IN_PROGRESS and invoice.amount_paid == Decimal("400.00")
    _bank_payment(customer, "600.00", invoice=invoice, key="bank-part-2")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID and balance_of(customer) == Decimal("1000.00")
    assert _balance("holding:EUR") == 0


@pytest.mark.django_db
def test_cancelling_a_part_paid_topup_keeps_what_was_credited(currencies, customer):
    invoice = invoice_topup_create(customer=customer, amount=Decimal("1000.00"), currency="EUR")
    _bank_payment(customer, "400.00", invoice=invoice)

    invoice_cancel(invoice=invoice, reason="Customer paid the rest by card elsewhere")

    assert balance_of(customer) == Decimal("400.00") and _balance("holding:EUR") == 0


# --- item 7: credit notes reverse at the original rate, the last one takes the VAT remainder ------------

@pytest.mark.django_db
def test_credit_note_credits_what_the_balance_paid_not_todays_equivalent(currencies, staff):
    customer = _rub_customer()
    _bank_payment(customer, "9450.00", currency="RUB")
    invoice = _service_invoice(customer, "100.00", currency="EUR")
    assert invoice_pay_from_balance(invoice=invoice) and balance_of(customer) == 0
    currency_fixed_rate_set(code="RUB", rate=Decimal("100"))  # 100 EUR is now 10,000 RUB

    half = credit_note_issue(invoice=invoice, reason="Half", actor=staff, amount=Decimal("33.33"))
    assert balance_of(customer) == Decimal("3149.69")  # 33.33 × 94.5, the rate it was paid at
    assert half.ledger_transaction.rate == Decimal("94.5")
    credit_note_issue(invoice=invoice, reason="Rest", actor=staff)

    assert balance_of(customer) == Decimal("9450.00")


@pytest.mark.django_db
def test_partial_credit_notes_add_up_to_the_invoice_tax_exactly(currencies, customer, staff, fund):
    TaxRateFactory(country=customer.country, percent=Decimal("21"))
    fund(customer, "60.50")
    invoice = _service_invoice(customer, "50.00")
    assert (invoice.tax_amount, invoice.total) == (Decimal("10.50"), Decimal("60.50"))
    assert invoice_pay_from_balance(invoice=invoice)

    for _ in range(6):  # 10.00 each: 1.7355… tax rounds up every time
        credit_note_issue(invoice=invoice, reason="Part", actor=staff, amount=Decimal("10.00"))
    last = credit_note_issue(invoice=invoice, reason="Rest", actor=staff)

    notes = CreditNote.objects.filter(invoice=invoice)
    assert last.amount == Decimal("0.50") and last.tax_amount == Decimal("0.06")  # 10.50 − 6 × 1.74, not 0.09
    assert sum(n.tax_amount for n in notes) == Decimal("10.50") and sum(n.amount - n.tax_amount for n in notes) == Decimal("50.00")
    assert (_balance("revenue:EUR"), _balance("tax:EUR"), balance_of(customer)) == (0, 0, Decimal("60.50"))


# --- item 10: captured money is always recorded; staleness from the feed's own date ----------------------

@pytest.mark.django_db
def test_staleness_is_measured_from_the_feed_date_not_the_fetch(currencies, settings):
    with time_machine.travel(NOW, tick=False):
        # Fetched a minute ago, but the feed itself is the 2025-10-21 sample.
        Currency.objects.filter(code="USD").update(rate_feed_date=dt.date(2025, 10, 21), rate_updated_at=timezone.now())
        assert RateTable().stale("USD")
        Currency.objects.filter(code="USD").update(rate_feed_date=dt.date(2026, 12, 3))
        assert not RateTable().stale("USD")
        settings.BILLING_RATE_MAX_AGE_HOURS = 12  # published 2026-12-03 16:00 Frankfurt = 15:00 UTC, 19 h ago
        assert RateTable().stale("USD")


@pytest.mark.django_db
def test_captured_payment_at_a_stale_rate_is_recorded_and_flagged(currencies, customer):
    with time_machine.travel(NOW, tick=False):
        Currency.objects.filter(code="USD").update(rate_feed_date=dt.date(2025, 10, 21), rate_updated_at=timezone.now())

        payment = payment_record(idempotency_key="card:usd-stale", customer=customer, amount=Decimal("100.00"),
                                 currency="USD", method="bank_transfer")

    payment.refresh_from_db()
    assert payment.rate_stale and payment.rate == Decimal("0.861549065219")
    assert balance_of(customer) == Decimal("86.15")
    flag = ActivityEvent.objects.get(action="billing.payment_stale_rate", customer=customer)
    assert flag.visible_to_customer is False
    with pytest.raises(RateError):  # what the customer asks for still waits for a fresh rate
        account_currency_change_preview(customer=customer, currency="USD")


@pytest.mark.django_db
def test_refundable_payments_and_the_payment_page_show_what_went_back(currencies, customer, owner, staff, client):
    from django.urls import reverse

    from billing.selectors import refundable_payments

    first = _bank_payment(customer, "20.00", key="bank-a")
    second = _bank_payment(customer, "30.00", key="bank-b")
    payment_refund_sent_by_bank(payment=second, amount=Decimal("10.00"), bank_reference="OUT-a", reason="part", actor=staff)

    assert [(p.pk, left) for p, left in refundable_payments(customer)] == [(second.pk, Decimal("20.00")), (first.pk, Decimal("20.00"))]
    client.force_login(owner)
    page = client.get(reverse("billing:payment_detail", args=[second.pk]))
    assert b'data-testid="payment-refunded"' in page.content and "€10.00" in page.content.decode()


@pytest.mark.django_db
def test_credit_note_waits_while_a_refund_of_the_invoice_is_being_sent(currencies, customer, staff):
    invoice = _service_invoice(customer, "40.00")
    payment = _bank_payment(customer, "40.00", invoice=invoice)
    refund = payment_refund_reserve(payment=payment, amount=Decimal("15.00"), reason="part to the card", actor=staff)

    with pytest.raises(BillingError) as refused:
        credit_note_issue(invoice=invoice, reason="rest to the balance", actor=staff)
    assert refused.value.code == "refund_pending"

    payment_refund_complete(refund=refund, external_id="OUT-p", actor=staff)
    note = credit_note_issue(invoice=invoice, reason="rest to the balance", actor=staff)
    assert note.amount == Decimal("25.00") and balance_of(customer) == Decimal("25.00")
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.REFUNDED


def _page_rows_by_orm(invoice):
    return (list(invoice.lines.values("description", "quantity", "unit_price", "amount")),
            list(invoice.payments.values("created_at", "method", "amount", "currency")),
            list(invoice.credit_notes.values("number", "reason", "amount", "currency")))


@pytest.mark.django_db
def test_invoice_page_rows_read_what_the_orm_reads(currencies, customer, staff, fund):
    """The invoice page's one UNION ALL statement: lines in position order, payments and credit notes newest
    first, the same values as the ORM reads them."""
    from billing.selectors import invoice_page_rows

    bill = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, lines=[
        LineInput(description=f"Line {n}", quantity=n, unit_price=Decimal(f"{n}.50")) for n in (1, 2, 3)])
    assert invoice_page_rows(bill, customer)[:3] == _page_rows_by_orm(bill) and len(invoice_page_rows(bill, customer)[0]) == 3
    assert invoice_page_rows(bill, customer)[3] == balance_of(customer) == 0  # no balance account yet
    fund(customer, "7.00")
    assert invoice_page_rows(bill, customer)[3] == balance_of(customer) == Decimal("7.00")
    invoice = invoice_topup_create(customer=customer, amount=Decimal("100.00"), currency="EUR")
    payment = _bank_payment(customer, "100.00", invoice=invoice)
    payment_refund_sent_by_bank(payment=payment, amount=Decimal("100.00"), bank_reference="OUT-9", reason="Unused", actor=staff)
    lines, payments, notes, balance = invoice_page_rows(invoice, customer)
    assert (lines, payments, notes) == _page_rows_by_orm(invoice) and balance == balance_of(customer)
    assert len(payments) == 1 and len(notes) == 1 and notes[0]["reason"] == "Unused"
