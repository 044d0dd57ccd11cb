import datetime as dt
import io
from collections import defaultdict
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from accounts.tests.factories import StaffUserFactory, UserFactory
from billing import tasks
from billing.models import Act, Invoice, LedgerAccount, LedgerEntry
from billing.services.acts import acts_generate, month_bounds, previous_month
from billing.services.errors import BillingError
from billing.services.invoices import (
    LineInput, invoice_issue, invoice_pay_from_balance, invoice_payer_choose, invoice_topup_create,
)
from billing.services.payers import payer_profile_get_or_create, payer_verify
from billing.services.payments import payment_record

from .concurrency import run_concurrently
from .factories import CompanyPayerFactory, TaxRateFactory, make_currencies

LAST_MONTH = previous_month()
IN_LAST_MONTH = timezone.make_aware(dt.datetime.combine(LAST_MONTH.replace(day=14), dt.time(12, 0)))


def _issue(customer, price, currency="EUR", kind=Invoice.Kind.ORDER, description="VPS M — 1 month"):
    return invoice_issue(customer=customer, kind=kind, currency=currency,
                         lines=[LineInput(description=description, quantity=1, unit_price=Decimal(price))])


def _pay_by_gateway(invoice, key):
    payment_record(idempotency_key=key, customer=invoice.customer, amount=invoice.total, currency=invoice.currency,
                   method="bank_transfer", invoice=invoice)


def _charges_by_payer_and_currency(customer, start, end):
    """Independent of acts: revenue and tax recognised in the ledger in the month, per payer and currency."""
    totals = defaultdict(Decimal)
    profile = payer_profile_get_or_create(customer=customer)
    entries = LedgerEntry.objects.filter(
        account__kind__in=[LedgerAccount.Kind.REVENUE, LedgerAccount.Kind.TAX], transaction__invoice__customer=customer,
        transaction__created_at__gte=start, transaction__created_at__lt=end,
    ).select_related("transaction__invoice")
    for entry in entries:
        totals[(entry.transaction.invoice.payer_id or profile.pk, entry.currency)] += entry.amount
    return dict(totals)


@pytest.mark.django_db
def test_the_months_charges_sum_to_the_act_total_per_payer_and_currency(currencies, customer, fund):
    TaxRateFactory(country="DE", percent=Decimal("19"))
    staff = StaffUserFactory()
    company = payer_verify(payer=CompanyPayerFactory(customer=customer), staff=staff)
    with time_machine.travel(IN_LAST_MONTH, tick=False):
        fund(customer, "500.00")
        for price in ("10.01", "20.00"):  # profile payer, EUR, from the balance
            invoice_pay_from_balance(invoice=_issue(customer, price))
        for price in ("33.33", "7.50"):  # company payer, EUR, from the balance
            invoice = _issue(customer, price)
            invoice_payer_choose(invoice=invoice, payer=company)
            invoice_pay_from_balance(invoice=invoice)
        usd = _issue(customer, "12.00", currency="USD")  # company payer, USD, paid directly by a gateway
        invoice_payer_choose(invoice=usd, payer=company)
        _pay_by_gateway(usd, "act-test:usd")
        _issue(customer, "99.00")  # never paid: not on an act
        invoice_topup_create(customer=customer, amount=Decimal("40.00"), currency="EUR")  # advance: not a service
    fund(customer, "50.00")
    invoice_pay_from_balance(invoice=_issue(customer, "5.00"))  # paid this month: next month's act

    acts = acts_generate(period=LAST_MONTH)
    start, end = month_bounds(LAST_MONTH)
    expected = _charges_by_payer_and_currency(customer, start, end)
    assert {(a.payer_id, a.currency): a.total for a in acts} == expected
    profile = payer_profile_get_or_create(customer=customer)
    assert expected == {(profile.pk, "EUR"): Decimal("35.71"), (company.pk, "EUR"): Decimal("48.59"), (company.pk, "USD"): Decimal("14.28")}
    for act in acts:
        lines = list(act.lines.all())
        assert sum(line.total for line in lines) == act.total == act.subtotal + act.tax_amount
        assert act.period == LAST_MONTH
    company_eur = next(a for a in acts if a.payer_id == company.pk and a.currency == "EUR")
    assert company_eur.payer_company == company.company_name and company_eur.payer_vat_number == company.vat_number

    assert acts_generate(period=LAST_MONTH) == []  # idempotent
    out = io.StringIO()
    call_command("generate_acts", month=LAST_MONTH.strftime("%Y-%m"), stdout=out)
    assert "0 act(s)" in out.getvalue() and Act.objects.count() == 3
    assert tasks.acts_generate_previous_month() == 0
    with pytest.raises(BillingError):
        acts_generate(period=timezone.localdate())  # the running month is not over


@pytest.mark.django_db
def test_one_act_per_customer_payer_currency_month_is_a_database_rule(currencies, customer, fund):
    with time_machine.travel(IN_LAST_MONTH, tick=False):
        fund(customer, "50.00")
        invoice_pay_from_balance(invoice=_issue(customer, "10.00"))
    act = acts_generate(period=LAST_MONTH)[0]
    with pytest.raises(IntegrityError), transaction.atomic():
        Act.objects.create(number="ACT-X", year=1999, sequence=1, customer=customer, payer=act.payer, currency="EUR",
                           period=act.period, subtotal=Decimal("1"), total=Decimal("1"))


@pytest.mark.django_db(transaction=True)
def test_act_numbers_stay_gap_free_when_runs_overlap():
    make_currencies()
    customers = [UserFactory().customer for _ in range(6)]
    with time_machine.travel(IN_LAST_MONTH, tick=False):
        for n, customer in enumerate(customers):
            invoice = _issue(customer, f"{n + 1}.00")
            _pay_by_gateway(invoice, f"threads:{n}")
    runs, errors = run_concurrently(lambda: acts_generate(period=LAST_MONTH), [()] * 4)
    made = [act for acts in runs for act in acts]
    assert errors == []
    assert len(made) == 6  # every group once, whichever run made it
    assert sorted(Act.objects.values_list("sequence", flat=True)) == list(range(1, 7))
    assert sorted(Act.objects.values_list("customer_id", flat=True)) == sorted(c.pk for c in customers)


@pytest.mark.django_db
def test_act_pdf_opens_and_shows_lines_and_totals(currencies, client, owner, customer, fund):
    TaxRateFactory(country="DE", percent=Decimal("19"))
    with time_machine.travel(IN_LAST_MONTH, tick=False):
        fund(customer, "100.00")
        invoice_pay_from_balance(invoice=_issue(customer, "10.01", description="Backup storage 100 GB"))
        invoice_pay_from_balance(invoice=_issue(customer, "20.00", description="VPS Start"))
    act = acts_generate(period=LAST_MONTH)[0]
    client.force_login(owner)
    response = client.get(reverse("billing:act_pdf", args=[act.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert act.number in text and "Backup storage 100 GB" in text and "VPS Start" in text
    assert "€30.01" in text and "€5.70" in text and "€35.71" in text  # net, tax, total
    assert LAST_MONTH.strftime("%B %Y") in text


@pytest.mark.django_db
def test_another_customers_act_is_a_404(currencies, client, fund):
    stranger = UserFactory()
    with time_machine.travel(IN_LAST_MONTH, tick=False):
        fund(stranger.customer, "20.00")
        invoice_pay_from_balance(invoice=_issue(stranger.customer, "10.00"))
    act = acts_generate(period=LAST_MONTH)[0]
    client.force_login(UserFactory())
    assert client.get(reverse("billing:act_pdf", args=[act.pk])).status_code == 404
    client.force_login(stranger)
    assert client.get(reverse("billing:act_pdf", args=[act.pk])).status_code == 200
