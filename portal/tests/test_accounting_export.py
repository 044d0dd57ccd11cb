"""Exports for accountants (issue 21, item 6): staff download invoices, payments, credit notes and the
ledger for a period as CSV or XLSX, with amounts that add up to the reports; customers download their
own invoice list as CSV and see nobody else's."""
import csv
import io
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from openpyxl import load_workbook

from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import Invoice
from billing.services.corrections import credit_note_issue
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
from billing.tests.factories import make_currencies
from portal import selectors

from .test_backoffice import fund, staff

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=dt_timezone.utc)
URL = "admin:portal_staffreport_export"


def _csv(response) -> list[dict]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


@pytest.fixture
def books(db):
    """March: A pays 20.00 and gets 5.00 back; B leaves 10.00 unpaid. April: A's 7.00 (outside March)."""
    make_currencies()
    a, b = UserFactory().customer, UserFactory().customer
    with time_machine.travel(T0, tick=False):
        fund(a, "20.00")
        paid = invoice_issue(customer=a, kind=Invoice.Kind.ORDER, lines=[LineInput("VPS", 1, Decimal("20.00"))])
        assert invoice_pay_from_balance(invoice=paid)
        credit_note_issue(invoice=paid, reason="Downtime", actor=StaffUserFactory(), amount=Decimal("5.00"))
        invoice_issue(customer=b, kind=Invoice.Kind.ORDER, lines=[LineInput("VPS", 1, Decimal("10.00"))])
    with time_machine.travel(T0 + timedelta(days=30), tick=False):
        invoice_issue(customer=a, kind=Invoice.Kind.ORDER, lines=[LineInput("VPS", 1, Decimal("7.00"))])
    return a, b


def _get(client, what, fmt="csv"):
    return client.get(reverse(URL), {"what": what, "date_from": "2026-03-01", "date_to": "2026-03-31", "file_format": fmt})


@pytest.mark.django_db
def test_export_needs_the_reports_permission(client, books):
    client.force_login(staff())
    assert _get(client, "invoices").status_code == 403


@pytest.mark.django_db
def test_staff_exports_add_up_to_a_hand_count_and_to_the_revenue_report(client, books):
    client.force_login(staff("portal.view_staffreport"))
    invoices = _csv(_get(client, "invoices"))
    assert [(row["status"], row["total"]) for row in invoices] == [("paid", "20.00"), ("unpaid", "10.00")]  # not April's
    payments = _csv(_get(client, "payments"))
    assert [(row["amount"], row["currency"]) for row in payments] == [("20.00", "EUR")]
    notes = _csv(_get(client, "credit_notes"))
    assert [(row["number"], row["total"], row["invoice"]) for row in notes] == [("CN-2026-000001", "5.00", invoices[0]["number"])]
    ledger = _csv(_get(client, "ledger"))
    assert all(sum(Decimal(r["amount"]) for r in ledger if r["transaction"] == t) == 0 for t in {r["transaction"] for r in ledger})
    revenue = sum(Decimal(r["amount"]) for r in ledger if r["account"] == "revenue:EUR")
    assert revenue == Decimal("15.00")  # 20.00 recognised - 5.00 credited
    with time_machine.travel(T0 + timedelta(days=40), tick=False):
        report = selectors.revenue_by_month()
    assert [row["total"] for row in report["rows"] if row["currency"] == "EUR"] == [revenue]

    xlsx = _get(client, "invoices", "xlsx")
    assert xlsx["Content-Type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    values = list(sheet.values)
    assert values[0][0] == "number" and [Decimal(str(row[12])) for row in values[1:]] == [Decimal("20.00"), Decimal("10.00")]
    assert sheet.cell(row=2, column=13).number_format == "0.00"


@pytest.mark.django_db
def test_a_bad_period_is_a_form_error(client, books):
    client.force_login(staff("portal.view_staffreport"))
    response = client.get(reverse(URL), {"what": "invoices", "date_from": "2026-03-31", "date_to": "2026-03-01", "file_format": "csv"})
    assert response.status_code == 200 and b"The end must not be before the start." in response.content


@pytest.mark.django_db
def test_customer_downloads_only_their_own_invoice_list(client, books):
    a, _b = books
    client.force_login(a.users.first())
    rows = _csv(client.get(reverse("billing:invoices_csv")))
    assert [(row["total"], row["status"]) for row in rows] == [("20.00", "paid"), ("7.00", "unpaid")]
    assert "customer_id" not in rows[0]


@pytest.mark.django_db
def test_oss_report_sums_eu_b2c_sales_per_country_and_rate_for_the_quarter(client, settings):
    from billing.tests.factories import TaxRateFactory

    make_currencies()
    settings.BILLING_SELLER_COUNTRY = "NL"
    for country, percent in (("DE", "19"), ("FR", "20"), ("NL", "21")):
        TaxRateFactory(country=country, percent=Decimal(percent), label="VAT")

    def sale(country, amount, when):
        customer = UserFactory().customer
        customer.country = country
        customer.save()
        with time_machine.travel(when, tick=False):
            invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, lines=[LineInput("VPS", 1, Decimal(amount))])
            fund(customer, str(invoice.total))
            assert invoice_pay_from_balance(invoice=invoice)
        return invoice

    sale("DE", "100.00", datetime(2026, 2, 3, 12, tzinfo=dt_timezone.utc))
    french = sale("FR", "50.00", datetime(2026, 3, 3, 12, tzinfo=dt_timezone.utc))  # 50.00 + 10.00 VAT
    with time_machine.travel(datetime(2026, 3, 20, 12, tzinfo=dt_timezone.utc), tick=False):
        credit_note_issue(invoice=french, reason="Downtime", actor=StaffUserFactory(), amount=Decimal("10.00"))
    sale("NL", "100.00", datetime(2026, 2, 3, 12, tzinfo=dt_timezone.utc))  # domestic: not OSS
    sale("DE", "70.00", datetime(2026, 4, 1, 12, tzinfo=dt_timezone.utc))  # next quarter

    client.force_login(staff("portal.view_staffreport"))
    rows = _csv(client.get(reverse(URL), {"what": "oss", "date_from": "2026-01-01", "date_to": "2026-03-31", "file_format": "csv"}))
    # By hand: DE 100.00 at 19 % = 19.00; FR 50.00 at 20 % = 10.00, less the credit note of 10.00 gross whose
    # tax is 10.00 × 10/60 = 1.67 and net 8.33: 41.67 net, 8.33 tax.
    assert [(r["country"], r["tax_percent"], r["currency"], r["net"], r["tax"]) for r in rows] == [
        ("DE", "19", "EUR", "100.00", "19.00"), ("FR", "20", "EUR", "41.67", "8.33")]
