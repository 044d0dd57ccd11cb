"""Dashboard: role-filtered cards, a constant number of queries, the spending chart and a renewal
forecast that agrees with what the renewal job then charges."""
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal
from itertools import count

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory
from billing.gateways.models import AutopayCharge, AutopaySettings
from billing.gateways.tests.factories import SavedPaymentMethodFactory
from billing.models import Invoice
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
from billing.services.payments import payment_record
from billing.tests.factories import TaxRateFactory
from notifications.services import notify
from orders.models import Order, OrderRenewal
from orders.selectors import renewal_forecast
from orders.services import renewal_batch
from orders.tests.factories import PlanFactory
from portal.selectors import spending_by_month
from tickets.tests.factories import TicketFactory

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=dt_timezone.utc)
pytestmark = pytest.mark.usefixtures("departments")
_keys = count()


def fund(customer, amount):
    return payment_record(
        idempotency_key=f"portal-fund:{customer.pk}:{next(_keys)}", customer=customer, amount=Decimal(amount),
        currency=customer.currency, method="bank_transfer")


def make_orders(customer, plan, n, *, first_expiry, step=timedelta(hours=5), price="10.00", auto_renew=True):
    """Active one-month services expiring one after another from `first_expiry` (created directly:
    ordering is not under test here)."""
    start = first_expiry - timedelta(days=30)
    Order.objects.bulk_create(
        Order(customer=customer, plan=plan, period_months=1, price=Decimal(price), currency=customer.currency,
              status=Order.Status.ACTIVE, provisioning=Order.Provisioning.DONE, ip=f"198.51.{i // 250}.{i % 250 + 1}",
              anchor_at=start, anchor_months=1, period_started_at=start, expires_at=first_expiry + step * i,
              current_period=1, auto_renew=auto_renew)
        for i in range(n)
    )
    return list(Order.objects.filter(customer=customer).order_by("expires_at", "pk"))


def populate(customer, plan, n_services):
    """n services (a third renewing within 30 days), unpaid invoices, open tickets and notifications."""
    orders = make_orders(customer, plan, n_services, first_expiry=T0 + timedelta(days=2), step=timedelta(hours=7))
    downgrade = PlanFactory(prices={(1, "EUR"): "6.00"})
    Order.objects.filter(pk__in=[o.pk for o in orders[::3]]).update(scheduled_plan=downgrade)  # priced at renewal
    for i in range(min(n_services, 12)):
        invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, lines=[
            LineInput(description=f"Service {i}", quantity=1, unit_price=Decimal("5.00"))])
        TicketFactory(created_by=customer.users.first(), subject=f"Question {i}")
        notify(customer=customer, kind="low_balance", context={"balance": "1.00 EUR", "threshold": "5.00 EUR"},
               dedupe_key=f"t{i}")


def dashboard_queries(client, user) -> int:
    client.force_login(user)
    client.get(reverse("dashboard"))  # warm caches (site, content types, translations)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    return len(captured)


@pytest.mark.django_db
def test_dashboard_query_count_is_the_same_for_3_and_300_services(client, currencies):
    plan = PlanFactory()
    small, large = UserFactory(), UserFactory()
    populate(small.customer, plan, 3)
    populate(large.customer, plan, 300)
    fund(large.customer, "100.00")
    with time_machine.travel(T0, tick=False):
        small_count = dashboard_queries(client, small)
        large_count = dashboard_queries(client, large)
        response = client.get(reverse("dashboard"))
    assert small_count == large_count
    # 20 before the forecast read its due orders and pending invoices as one statement, 19 before the services
    # list carried their count (the top bar uncached here: TOPBAR_CACHE_SECONDS is 0 in tests).
    assert small_count == 18, small_count
    html = response.content.decode()
    assert html.count('data-testid="dashboard-service"') == 5
    assert html.count('data-testid="forecast-row"') == 10  # DASHBOARD_FORECAST_ROWS soonest of ~100 due
    assert 'data-testid="forecast-warning"' in html  # 100.00 does not cover ~100 renewals of 10.00
    due = renewal_batch.due_for_auto_renewal(T0 + timedelta(days=30)).filter(customer=large.customer).count()
    assert due > 50
    assert f"and {due - 10} more renewals totalling" in html
    assert 'href="/orders/?sort=expires"' in html
    assert '<span class="badge text-bg-secondary">300</span>' in html  # every live service counted, 5 listed


@pytest.mark.django_db
def test_services_card_counts_only_live_services_and_shows_no_count_without_them(client, currencies):
    user = UserFactory()
    orders = make_orders(user.customer, PlanFactory(), 5, first_expiry=T0 + timedelta(days=40))
    Order.objects.filter(pk__in=[o.pk for o in orders[:3]]).update(status=Order.Status.TERMINATED)
    client.force_login(user)
    with time_machine.travel(T0, tick=False):
        html = client.get(reverse("dashboard")).content.decode()
        assert html.count('data-testid="dashboard-service"') == 2
        assert '<span class="badge text-bg-secondary">2</span>' in html  # the terminated three not counted
        Order.objects.filter(customer=user.customer).update(status=Order.Status.CANCELLED)
        html = client.get(reverse("dashboard")).content.decode()
    assert 'data-testid="dashboard-service"' not in html and "You have no services yet." in html
    assert 'badge text-bg-secondary">0<' not in html


@pytest.mark.django_db
def test_forecast_summarises_renewals_beyond_the_shown_rows(currencies, settings):
    """Totals, coverage and the shortfall cover every due renewal, whatever the number of rows shown."""
    customer = UserFactory().customer
    make_orders(customer, PlanFactory(), 5, first_expiry=T0 + timedelta(days=2), step=timedelta(days=1))
    fund(customer, "25.00")  # covers two renewals of 10.00; the 3rd is 5.00 short, the 4th and 5th 10.00 each
    settings.DASHBOARD_FORECAST_ROWS = 2
    with time_machine.travel(T0, tick=False):
        capped = renewal_forecast(customer=customer)
        full = renewal_forecast(customer=customer, shown=100)
    assert [row.covered_by for row in capped.rows] == ["balance", "balance"]
    assert capped.count == 5 and capped.more_count == 3 and capped.more_total == Decimal("30.00")
    assert (capped.total, capped.shortfall, capped.uncovered) == (full.total, full.shortfall, full.uncovered)
    assert capped.total == Decimal("50.00") and capped.shortfall == Decimal("25.00") and not capped.all_covered
    assert capped.rows == full.rows[:2]


@pytest.mark.django_db
def test_cards_follow_the_role(client, currencies):
    owner = UserFactory()
    finance = UserFactory(customer=owner.customer, role=User.Role.FINANCE)
    technical = UserFactory(customer=owner.customer, role=User.Role.TECHNICAL)
    client.force_login(finance)
    html = client.get(reverse("dashboard")).content.decode()
    assert 'data-testid="dashboard-balance"' in html and 'data-testid="dashboard-invoices"' in html
    assert 'data-testid="dashboard-services"' not in html and 'data-testid="dashboard-tickets"' not in html
    client.force_login(technical)
    html = client.get(reverse("dashboard")).content.decode()
    assert 'data-testid="dashboard-services"' in html and 'data-testid="dashboard-tickets"' in html
    for card in ("dashboard-balance", "dashboard-invoices", "forecast", "spending-chart"):
        assert f'data-testid="{card}"' not in html
    assert "Renew" not in html  # renewing spends money: billing area only


@pytest.mark.django_db
def test_staff_without_customer_is_refused(client):
    staff = UserFactory(customer=None, is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("dashboard")).status_code == 403


@pytest.mark.django_db
def test_forecast_matches_what_the_renewal_job_charges(currencies):
    """Forecast at T0, then run the job on a frozen clock at each forecast moment: every renewal
    invoice asks exactly the forecast amount, and exactly the forecast rows are paid from the balance."""
    owner = UserFactory()
    customer = owner.customer
    TaxRateFactory(country=customer.country, percent=Decimal("19"))
    plan = PlanFactory()
    cheaper = PlanFactory(prices={(1, "EUR"): "7.35", (3, "EUR"): "20.00"})
    orders = make_orders(customer, plan, 4, first_expiry=T0 + timedelta(days=3), step=timedelta(days=6),
                         price="10.33")
    Order.objects.filter(pk=orders[1].pk).update(scheduled_plan=cheaper)  # downgrade applies at renewal
    Order.objects.filter(pk=orders[3].pk).update(auto_renew=False)  # not renewed by the job
    make_orders(customer, plan, 1, first_expiry=T0 + timedelta(days=45))  # outside the window
    fund(customer, "30.00")  # covers two renewals (12.29 + 8.75), not the third

    with time_machine.travel(T0, tick=False):
        forecast = renewal_forecast(customer=customer, shown=2)  # the third renewal only in the totals
        every_row = renewal_forecast(customer=customer, shown=100).rows  # when to run the job
    by_order = {row.order_id: row for row in forecast.rows}
    assert list(by_order) == [orders[0].pk, orders[1].pk] and forecast.more_count == 1
    assert by_order[orders[0].pk].amount == Decimal("12.29")  # 10.33 + 19% VAT, rounded half up
    assert by_order[orders[1].pk].amount == Decimal("8.75")  # the scheduled plan's price + VAT
    assert [row.covered_by for row in forecast.rows] == ["balance", "balance"]
    assert forecast.uncovered == 1
    assert forecast.shortfall == Decimal("12.29") - (Decimal("30.00") - Decimal("12.29") - Decimal("8.75"))

    for row in every_row:
        with time_machine.travel(row.renews_at, tick=False):
            renewal_batch.renewals_run()
    invoices = {r.order_id: Invoice.objects.get(pk=r.invoice_id) for r in OrderRenewal.objects.filter(period=2)}
    assert set(invoices) == {orders[0].pk, orders[1].pk, orders[2].pk}  # not orders[3] (auto-renew off)
    for row in forecast.rows:
        assert invoices[row.order_id].total == row.amount
        assert (invoices[row.order_id].status == Invoice.Status.PAID) == (row.covered_by == "balance")
    assert sum(invoice.total for invoice in invoices.values()) == forecast.total
    assert forecast.more_total == invoices[orders[2].pk].total
    unpaid = [invoice for invoice in invoices.values() if invoice.status != Invoice.Status.PAID]
    assert len(unpaid) == forecast.uncovered
    assert sum(invoice.total for invoice in unpaid) - forecast.shortfall == Decimal("30.00") - Decimal("12.29") - Decimal("8.75")


@pytest.mark.django_db
@pytest.mark.parametrize(("zone", "covered"), [("Europe/Moscow", ["autopay", "autopay", ""]), ("UTC", ["autopay", "", ""])])
def test_forecast_gives_each_provider_month_its_own_auto_payment_cap(currencies, settings, zone, covered):
    """Renewals at 20:00, 21:30 and 23:00 UTC on March 31: in Moscow (UTC+3) the last two are April's and
    take April's 15.00 cap; in UTC all three share March's."""
    settings.TIME_ZONE = zone
    customer = UserFactory().customer
    make_orders(customer, PlanFactory(), 3, first_expiry=datetime(2026, 4, 1, 20, 0, tzinfo=dt_timezone.utc),
                step=timedelta(minutes=90))
    method = SavedPaymentMethodFactory(customer=customer)
    AutopaySettings.objects.create(customer=customer, enabled=True, method=method, monthly_limit=Decimal("15.00"))
    with time_machine.travel(T0, tick=False):
        forecast = renewal_forecast(customer=customer)
    assert [row.renews_at.hour for row in forecast.rows] == [20, 21, 23]
    assert [row.covered_by for row in forecast.rows] == covered


@pytest.mark.django_db
def test_forecast_counts_auto_payment_within_its_monthly_cap(currencies):
    customer = UserFactory().customer
    plan = PlanFactory()
    make_orders(customer, plan, 3, first_expiry=T0 + timedelta(days=2), step=timedelta(days=2))
    method = SavedPaymentMethodFactory(customer=customer)
    AutopaySettings.objects.create(customer=customer, enabled=True, method=method, monthly_limit=Decimal("25.00"))
    AutopayCharge.objects.create(customer=customer, day=T0.date(), amount=Decimal("8.00"), currency="EUR",
                                 status=AutopayCharge.Status.SUCCEEDED)
    fund(customer, "4.00")
    with time_machine.travel(T0, tick=False):
        forecast = renewal_forecast(customer=customer)
    # 25.00 cap − 8.00 used = 17.00 left: the first two renewals (6.00 + 10.00 missing) fit, the third does not.
    assert forecast.autopay_left_this_month == Decimal("17.00")
    assert [row.covered_by for row in forecast.rows] == ["autopay", "autopay", ""]
    assert forecast.shortfall == Decimal("10.00")


@pytest.mark.django_db
def test_forecast_uses_an_already_issued_renewal_invoice(currencies):
    customer = UserFactory().customer
    order = make_orders(customer, PlanFactory(), 1, first_expiry=T0 + timedelta(hours=2))[0]
    with time_machine.travel(T0, tick=False):
        renewal_batch.renewals_run()  # no funds: the renewal invoice stays open
        invoice = Invoice.objects.get(kind=Invoice.Kind.RENEWAL)
        row = renewal_forecast(customer=customer).rows[0]
    assert row.order_id == order.pk and row.amount == invoice.total and row.covered_by == ""


@pytest.mark.django_db
def test_spending_by_month_sums_paid_service_invoices_not_top_ups(currencies):
    customer = UserFactory().customer
    fund(customer, "100.00")
    for month, amount in ((1, "12.00"), (1, "3.00"), (3, "20.00")):
        with time_machine.travel(datetime(2026, month, 15, 12, tzinfo=dt_timezone.utc), tick=False):
            invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                                    lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal(amount))])
            assert invoice_pay_from_balance(invoice=invoice)
    invoice_issue(customer=customer, kind=Invoice.Kind.ORDER,
                  lines=[LineInput(description="unpaid", quantity=1, unit_price=Decimal("99.00"))])
    with time_machine.travel(T0, tick=False):
        series = spending_by_month(customer=customer)
    assert [s.currency for s in series] == ["EUR"]
    months = {m.month.month: m.amount for m in series[0].months}
    assert len(series[0].months) == 12 and series[0].months[-1].month.month == 3
    assert months[1] == Decimal("15.00") and months[3] == Decimal("20.00") and months[2] == 0


@pytest.mark.django_db
def test_chart_is_accessible_svg_with_values(client, currencies):
    owner = UserFactory()
    fund(owner.customer, "50.00")
    invoice = invoice_issue(customer=owner.customer, kind=Invoice.Kind.ORDER,
                            lines=[LineInput(description="VPS", quantity=1, unit_price=Decimal("42.50"))])
    invoice_pay_from_balance(invoice=invoice)
    client.force_login(owner)
    html = client.get(reverse("dashboard")).content.decode()
    assert '<svg class="bar-chart' in html and 'role="img"' in html and "<desc" in html
    assert "€42.50" in html  # the exact value in the description and the data table
    assert "<script" not in html.split('data-testid="spending-chart"')[1].split("</section>")[0]
