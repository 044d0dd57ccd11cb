"""Dunning (issue 21, item 3): reminders on the configured days around the due date, each step once per
invoice (also under parallel runs), the customer's email choice respected except for mandatory notices,
and an optional late fee invoiced once, without VAT, and recognised through the ledger when paid."""
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command

from accounts.tests.factories import UserFactory
from billing import dunning
from billing.models import DunningNotice, Invoice, LedgerAccount
from billing.services.invoices import LineInput, invoice_cancel, invoice_issue, invoice_pay_from_balance
from billing.tests.concurrency import run_concurrently
from billing.tests.factories import TaxRateFactory, make_currencies
from notifications.models import EmailOutbox, Notification
from notifications.services import preferences_update

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def dunning_settings(settings):
    settings.BILLING_INVOICE_DUE_DAYS = 7
    settings.BILLING_DUNNING_DAYS = (-3, 1, 7)
    settings.BILLING_LATE_FEE_PERCENT = Decimal("0")
    settings.BILLING_LATE_FEE_AFTER_DAYS = 7
    return settings


def _invoice(customer, amount="10.00") -> Invoice:
    with time_machine.travel(T0, tick=False):
        return invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                             lines=[LineInput("VPS", 1, Decimal(amount))])


def _run(at: datetime):
    with time_machine.travel(at, tick=False):
        return dunning.dunning_run()


def _notices(customer, kind=None):
    rows = Notification.objects.filter(customer=customer, kind__in=[kind] if kind else ["invoice_reminder", "invoice_overdue"])
    return list(rows.order_by("pk").values_list("kind", "dedupe_key"))


@pytest.mark.django_db
def test_each_step_goes_out_once_on_its_day(dunning_settings, currencies, customer):
    invoice = _invoice(customer)  # due T0 + 7 days
    assert _run(T0 + timedelta(days=4) - timedelta(seconds=1)).reminded == 0
    assert _run(T0 + timedelta(days=4)).reminded == 1  # 3 days before the due date
    assert _run(T0 + timedelta(days=5)).reminded == 0
    assert _run(T0 + timedelta(days=8)).reminded == 1  # 1 day after
    assert _run(T0 + timedelta(days=8, hours=5)).reminded == 0
    assert _run(T0 + timedelta(days=14)).reminded == 1  # 7 days after
    assert _run(T0 + timedelta(days=30)).reminded == 0
    assert _notices(customer) == [("invoice_reminder", f"invoice:{invoice.pk}:dunning:-3"),
                                  ("invoice_overdue", f"invoice:{invoice.pk}:dunning:1"),
                                  ("invoice_overdue", f"invoice:{invoice.pk}:dunning:7")]
    overdue = Notification.objects.filter(kind="invoice_overdue").order_by("pk").first()
    assert overdue.context["days_overdue"] == 1 and overdue.context["amount"] == "€10.00"


@pytest.mark.django_db
def test_a_late_run_sends_only_the_latest_step(dunning_settings, currencies, customer):
    invoice = _invoice(customer)
    assert _run(T0 + timedelta(days=20)).reminded == 1
    assert _notices(customer) == [("invoice_overdue", f"invoice:{invoice.pk}:dunning:7")]
    assert set(DunningNotice.objects.values_list("step", "notified")) == {(-3, False), (1, False), (7, True)}


@pytest.mark.django_db
def test_paid_cancelled_and_top_up_invoices_get_no_reminder(dunning_settings, currencies, customer, fund):
    paid = _invoice(customer)
    fund(customer, "10.00")
    assert invoice_pay_from_balance(invoice=paid)
    paid.refresh_from_db()
    assert paid.status == Invoice.Status.PAID
    invoice_cancel(invoice=_invoice(customer), reason="test")
    with time_machine.travel(T0, tick=False):
        invoice_issue(customer=customer, kind=Invoice.Kind.ADVANCE, lines=[LineInput("Top-up", 1, Decimal("5"))])
    assert _run(T0 + timedelta(days=20)).reminded == 0 and not _notices(customer)


@pytest.mark.django_db
def test_email_choice_applies_to_reminders_but_not_to_overdue_notices(dunning_settings, currencies, customer):
    preferences_update(customer=customer, email_enabled={"invoice_reminder": False, "invoice_overdue": False})
    _invoice(customer)
    _run(T0 + timedelta(days=4))
    _run(T0 + timedelta(days=8))
    assert [kind for kind, _key in _notices(customer)] == ["invoice_reminder", "invoice_overdue"]  # both in the inbox
    assert list(EmailOutbox.objects.filter(kind__in=["invoice_reminder", "invoice_overdue"]).values_list("kind", flat=True)) \
        == ["invoice_overdue"]


@pytest.mark.django_db
def test_late_fee_is_invoiced_once_without_vat_and_recognised_when_paid(dunning_settings, currencies, customer, fund):
    dunning_settings.BILLING_SELLER_COUNTRY = "NL"
    dunning_settings.BILLING_LATE_FEE_PERCENT = Decimal("5")
    TaxRateFactory(country="DE", percent=Decimal("19"))
    invoice = _invoice(customer, amount="12.75")  # + 19 % VAT = 2.42; total 15.17
    assert invoice.total == Decimal("15.17")
    assert _run(T0 + timedelta(days=14) - timedelta(seconds=1)).late_fees == 0
    summary = _run(T0 + timedelta(days=14))
    assert (summary.late_fees, summary.reminded) == (1, 1)
    assert _run(T0 + timedelta(days=15)).late_fees == 0
    fee = Invoice.objects.get(kind=Invoice.Kind.LATE_FEE)
    # By hand: 5 % of the 12.75 subtotal = 0.6375 -> 0.64, no VAT on a late fee.
    assert (fee.subtotal, fee.tax_amount, fee.total, fee.reference) == (Decimal("0.64"), Decimal("0"), Decimal("0.64"),
                                                                        f"latefee:{invoice.pk}")
    assert Notification.objects.get(dedupe_key=f"invoice:{invoice.pk}:dunning:7").context["late_fee"] == "€0.64"
    fund(customer, "15.81")
    assert invoice_pay_from_balance(invoice=invoice) and invoice_pay_from_balance(invoice=fee)
    fee.refresh_from_db()
    invoice.refresh_from_db()
    assert fee.status == invoice.status == Invoice.Status.PAID
    revenue = LedgerAccount.objects.get(code="revenue:EUR").balance
    tax = LedgerAccount.objects.get(code="tax:EUR").balance
    assert (abs(revenue), abs(tax)) == (Decimal("13.39"), Decimal("2.42"))  # 12.75 + 0.64; VAT only on the service


@pytest.mark.django_db(transaction=True)
def test_parallel_runs_send_each_step_and_charge_each_late_fee_once(settings):
    settings.BILLING_INVOICE_DUE_DAYS = 7
    settings.BILLING_DUNNING_DAYS = (-3, 1, 7)
    settings.BILLING_LATE_FEE_PERCENT = Decimal("10")
    settings.BILLING_LATE_FEE_AFTER_DAYS = 7
    make_currencies()
    customers = [UserFactory().customer for _ in range(3)]
    invoices = [_invoice(customer) for customer in customers]

    # One travel for all threads: time-machine patches the whole process, and threads entering and
    # leaving travels of their own would pop each other's clock.
    with time_machine.travel(T0 + timedelta(days=14), tick=False):
        results, errors = run_concurrently(lambda _n: dunning.dunning_run(), [(n,) for n in range(6)])
    assert not errors, errors
    assert sum(r.reminded for r in results) == 3 and sum(r.late_fees for r in results) == 3
    for customer, invoice in zip(customers, invoices):
        assert _notices(customer, "invoice_overdue") == [("invoice_overdue", f"invoice:{invoice.pk}:dunning:7")]
        assert Invoice.objects.get(customer=customer, kind=Invoice.Kind.LATE_FEE).total == Decimal("1.00")
    # The invoice series stays gap-free: 3 invoices and 3 late fees numbered 1..6.
    assert sorted(Invoice.objects.values_list("sequence", flat=True)) == [1, 2, 3, 4, 5, 6]
    call_command("audit_ledger")
