"""Staff reports: permission, and each section computed from real rows."""
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from django.urls import reverse

from accounts.models import Customer
from accounts.tests.factories import StaffUserFactory, UserFactory
from billing.models import Currency, Invoice
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
from billing.tests.factories import make_currencies
from portal import selectors

from .test_backoffice import active_order, fund, staff

T0 = datetime(2026, 6, 15, 12, 0, tzinfo=dt_timezone.utc)


def issue(customer, amount, when):
    with time_machine.travel(when, tick=False):
        return invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                             lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal(amount))])


@pytest.mark.django_db
def test_reports_page_needs_the_permission(client):
    url = reverse("admin:portal_staffreport_changelist")
    client.force_login(staff())
    assert client.get(url).status_code == 403
    assert b"portal/staffreport" not in client.get(reverse("admin:index")).content
    client.force_login(staff("portal.view_staffreport"))
    assert client.get(url).status_code == 200
    assert b"portal/staffreport" in client.get(reverse("admin:index")).content
    client.logout()
    assert client.get(url).status_code == 302  # to the admin login


@pytest.mark.django_db
def test_revenue_receivables_expiring_verification_and_rates(client):
    make_currencies()
    customer = UserFactory().customer
    with time_machine.travel(T0 - timedelta(days=40), tick=False):
        fund(customer, "100.00")
    paid = issue(customer, "30.00", T0 - timedelta(days=40))
    with time_machine.travel(T0 - timedelta(days=40), tick=False):
        assert invoice_pay_from_balance(invoice=paid)
    issue(customer, "7.00", T0 - timedelta(days=5))  # 0–30 days
    issue(customer, "11.00", T0 - timedelta(days=45))  # 31–60 days
    issue(customer, "13.00", T0 - timedelta(days=200))  # over 90 days
    soon, later = active_order(customer), active_order(customer)
    soon.expires_at, later.expires_at = T0 + timedelta(days=3), T0 + timedelta(days=20)
    soon.save(update_fields=["expires_at"])
    later.save(update_fields=["expires_at"])
    UserFactory(customer__profile_type=Customer.ProfileType.COMPANY, customer__company_name="Waiting Ltd",
                customer__verification_status=Customer.Verification.PENDING)
    Currency.objects.filter(code="USD").update(rate_updated_at=T0 - timedelta(days=10))

    with time_machine.travel(T0, tick=False):
        report = selectors.staff_reports()
        client.force_login(StaffUserFactory())
        html = client.get(reverse("admin:portal_staffreport_changelist")).content.decode()

    revenue = report["revenue"]
    eur = next(row for row in revenue["rows"] if row["currency"] == "EUR")
    may = revenue["months"].index(datetime(2026, 5, 1).date())
    assert eur["amounts"][may] == Decimal("30.00") and eur["total"] == Decimal("30.00")
    # One row per month and one column per currency, the total in the footer: the table cannot be
    # cut off on the right however many months it shows (it was 14 columns wide).
    assert len(revenue["by_month"]) == 12
    assert {"currency": "EUR", "amount": Decimal("30.00")} in revenue["by_month"][may]["amounts"]
    assert html.count('data-testid="revenue-row"') == 12
    revenue_table = html[html.index('id="revenue"'):html.index('id="receivables"')]
    assert revenue_table.count('scope="col"') == 1 + len(revenue["rows"])
    assert 'data-testid="revenue-total"><strong>€30.00</strong>' in revenue_table
    receivable = report["receivables"]["rows"][0]
    assert receivable["count"] == 3 and receivable["total"] == Decimal("31.00")
    assert receivable["buckets"] == [Decimal("7.00"), Decimal("11.00"), Decimal("0"), Decimal("13.00")]
    assert report["receivables"]["oldest"][0].age_days == 200
    assert report["expiring"]["within_7"] == 1 and report["expiring"]["within_30"] == 2
    assert [o.pk for o in report["expiring"]["soonest"]] == [soon.pk, later.pk]
    assert [c.company_name for c in report["awaiting_verification"]["oldest"]] == ["Waiting Ltd"]
    stale = {row["currency"].code: row["stale"] for row in report["rates"]}
    assert stale["USD"] is True and stale["GBP"] is False and stale["EUR"] is False
    assert "Waiting Ltd" in html and html.count('data-testid="expiring-row"') == 2
    assert "out of date" in html


@pytest.mark.django_db
def test_reports_page_query_count_does_not_grow(client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_currencies()
    client.force_login(StaffUserFactory())
    url = reverse("admin:portal_staffreport_changelist")
    counts = []
    for n in (2, 20):
        for _ in range(n):
            customer = UserFactory(customer__profile_type=Customer.ProfileType.COMPANY, customer__company_name="Co",
                                   customer__verification_status=Customer.Verification.PENDING).customer
            issue(customer, "5.00", T0 - timedelta(days=3))
            order = active_order(customer)
            order.expires_at = timezone.now() + timedelta(days=2)
            order.save(update_fields=["expires_at"])
        client.get(url)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        counts.append(len(captured))
    assert counts[0] == counts[1]
