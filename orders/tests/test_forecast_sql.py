"""The renewal forecast read as one statement of price keys and month indexes (orders.selectors) gives
exactly what the former walk over every due order gave (forecast_reference): rows, totals, coverage,
shortfall, on varied orders (currencies with and without a rate, scheduled downgrades with and without a
price, add-ons, pending renewal invoices partly paid, auto-renew off or by the account default) at
calendar edges on a frozen clock: month ends (a 30-day window over three provider months), a leap day,
both DST changes in the provider's and the customer's zone, with and without auto-payment."""
import random
import zoneinfo
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Customer
from accounts.tests.factories import UserFactory
from billing.gateways.models import AutopayCharge, AutopaySettings
from billing.gateways.tests.factories import SavedPaymentMethodFactory
from billing.models import Currency, Invoice
from billing.selectors import enabled_currencies
from billing.services.invoices import LineInput, invoice_issue
from billing.services.payments import payment_record
from billing.tests.factories import TaxRateFactory
from orders.models import Order, OrderRenewal
from orders.selectors import renewal_forecast

from .factories import PlanFactory
from .forecast_reference import reference_forecast

UTC = dt_timezone.utc
pytestmark = pytest.mark.django_db

# (the frozen moment, the provider's zone (settings.TIME_ZONE), the customer's zone (the request's))
MOMENTS = [
    (datetime(2027, 1, 31, 22, 30, tzinfo=UTC), "Europe/Amsterdam", "America/New_York"),  # Jan 31 -> Mar 2: three months
    (datetime(2027, 1, 31, 23, 30, tzinfo=UTC), "UTC", "Europe/Moscow"),
    (datetime(2028, 2, 28, 23, 0, tzinfo=UTC), "Europe/Amsterdam", "UTC"),  # Feb 29 in Amsterdam, a leap year
    (datetime(2027, 3, 27, 23, 0, tzinfo=UTC), "Europe/Amsterdam", "Europe/Amsterdam"),  # the spring DST night
    (datetime(2026, 10, 24, 23, 30, tzinfo=UTC), "Europe/Amsterdam", "America/New_York"),  # the autumn DST night
    (datetime(2026, 10, 31, 4, 30, tzinfo=UTC), "America/New_York", "Pacific/Auckland"),  # Oct 31 in New York, DST ends Nov 1
    (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), "UTC", "UTC"),  # the year change
]


def _populate(customer, rng: random.Random, now: datetime, n: int) -> None:
    # USD's rate is fresh, GBP's out of date (its renewals cannot be priced), CHF has none.
    Currency.objects.filter(code="USD").update(rate_updated_at=now - timedelta(hours=1), rate_feed_date=None)
    plan = PlanFactory()
    downgrade = PlanFactory(prices={(1, "EUR"): "7.35", (3, "EUR"): "20.00"})  # a USD order's price is converted
    unsold = PlanFactory(prices={(12, "EUR"): "90.00"})  # no 1-month price: the row says why
    orders = []
    for i in range(n):
        expires = now + timedelta(minutes=rng.randrange(-3 * 24 * 60, 33 * 24 * 60))
        orders.append(Order(
            customer=customer, plan=plan, period_months=1, currency=rng.choice(["EUR", "EUR", "EUR", "USD", "USD", "GBP", "CHF"]),
            price=Decimal(rng.choice(["0.00", "6.00", "7.35", "10.33", "12.00", "18.00"])),
            addons_price=Decimal(rng.choice(["0.00", "0.00", "2.50"])),
            status=rng.choice([Order.Status.ACTIVE] * 4 + [Order.Status.EXPIRED, Order.Status.SUSPENDED]),
            provisioning=Order.Provisioning.DONE, ip=f"198.51.{i // 250}.{i % 250 + 1}",
            anchor_at=expires - timedelta(days=30), anchor_months=1, period_started_at=expires - timedelta(days=30),
            expires_at=expires, current_period=1, auto_renew=rng.choice([True, True, None, False]),
            cancel_at_period_end=rng.random() < 0.05,
            scheduled_plan=rng.choice([None] * 5 + [downgrade, downgrade, unsold])))
    # Same expiry for a few (ordered by pk then).
    for order in orders[1:4]:
        order.expires_at = orders[0].expires_at
    Order.objects.bulk_create(orders)
    for order in rng.sample(orders, k=min(5, n)):  # renewal invoices already issued (open, part paid, or paid)
        invoice = invoice_issue(customer=customer, kind=Invoice.Kind.RENEWAL, currency=order.currency if order.currency != "CHF" else "EUR",
                                lines=[LineInput(description="renewal", quantity=1, unit_price=Decimal("9.99"))])
        state = rng.choice(["open", "part", "paid", "old period"])
        if state in ("part", "paid"):
            payment_record(idempotency_key=f"forecast-sql:{invoice.pk}", customer=customer, currency=invoice.currency,
                           amount=Decimal("3.00") if state == "part" else invoice.total, method="bank_transfer",
                           invoice=invoice)
        OrderRenewal.objects.create(order=order, period=1 if state == "old period" else 2, amount=Decimal("9.99"), plan=plan,
                                    currency=invoice.currency,
                                    status=OrderRenewal.Status.PENDING, invoice_id=invoice.pk)


@pytest.mark.parametrize("seed", range(len(MOMENTS) * 2))
def test_the_statement_gives_what_the_walk_over_every_order_gave(currencies, fund, settings, seed):
    now, provider_zone, customer_zone = MOMENTS[seed % len(MOMENTS)]
    rng = random.Random(seed)
    settings.TIME_ZONE = provider_zone
    settings.ORDERS_RENEW_HOURS_BEFORE_EXPIRY = rng.choice([24, 24, 0, 72])
    customer = UserFactory().customer
    if rng.random() < 0.5:
        TaxRateFactory(country=customer.country, percent=Decimal("21"))
    if seed % 3 == 1:
        customer.auto_renew_default = False
        customer.save(update_fields=["auto_renew_default"])
    with time_machine.travel(now - timedelta(days=40), tick=False):
        fund(customer, rng.choice(["0.01", "15.00", "100.00", "1000.00"]))
    with time_machine.travel(now, tick=False):
        _populate(customer, rng, now, 60)
        if seed % 2 == 0:
            method = SavedPaymentMethodFactory(customer=customer)
            AutopaySettings.objects.create(customer=customer, enabled=True, method=method,
                                           monthly_limit=Decimal(rng.choice(["15.00", "40.00", "200.00"])))
            AutopayCharge.objects.create(customer=customer, day=timezone.localdate(now, timezone.get_default_timezone()),
                                         amount=Decimal("8.00"), currency="EUR", status=AutopayCharge.Status.SUCCEEDED)
        with timezone.override(zoneinfo.ZoneInfo(customer_zone)):
            for shown in (0, 3, 10, 100):
                expected = reference_forecast(customer=customer, shown=shown, currencies=enabled_currencies())
                found = renewal_forecast(customer=customer, shown=shown, currencies=enabled_currencies())
                assert found == expected, shown
                assert expected.count > 5
            # A balance that just covers every priced renewal, a cent less, none, less than none.
            for balance in (expected.total, expected.total - Decimal("0.01"), Decimal("0"), Decimal("-5.00")):
                expected = reference_forecast(customer=customer, shown=3, balance=balance)
                assert renewal_forecast(customer=customer, shown=3, balance=balance) == expected, balance


def test_no_due_orders_and_a_constant_number_of_queries(currencies, fund):
    customer = UserFactory().customer
    now = datetime(2027, 5, 10, 9, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        empty = renewal_forecast(customer=customer)
        assert empty == reference_forecast(customer=customer) and empty.count == 0 and not empty.rows
        counts = []
        for n in (3, 40):
            other = UserFactory().customer
            _populate(other, random.Random(n), now, n)
            with CaptureQueriesContext(connection) as queries:
                forecast = renewal_forecast(customer=other, currencies=enabled_currencies(), balance=Decimal("0"))
            counts.append(len(queries))
            assert forecast == reference_forecast(customer=other, currencies=enabled_currencies(), balance=Decimal("0"))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("zone", ["Europe/Amsterdam", "UTC"])
def test_each_provider_month_has_its_own_cap_across_a_dst_month_end(currencies, settings, zone):
    """March 28 2027 22:00 UTC (after the spring DST change): renewals of 6.00 every 3 hours; this month's cap
    has 7.00 left (15.00, 8.00 used), April's the full 15.00. In Amsterdam (UTC+2) April starts at 22:00 UTC
    on March 31, in UTC two hours later."""
    settings.TIME_ZONE = zone
    settings.ORDERS_RENEW_HOURS_BEFORE_EXPIRY = 0
    now = datetime(2027, 3, 28, 22, tzinfo=UTC)
    customer = UserFactory().customer
    plan = PlanFactory()
    Order.objects.bulk_create(
        Order(customer=customer, plan=plan, period_months=1, price=Decimal("6.00"), currency="EUR",
              status=Order.Status.ACTIVE, provisioning=Order.Provisioning.DONE, ip=f"198.51.100.{i + 1}",
              anchor_at=now, anchor_months=1, period_started_at=now, expires_at=datetime(2027, 3, 31, 16, tzinfo=UTC) + timedelta(hours=3 * i),
              current_period=1, auto_renew=True)
        for i in range(6))  # 16:00, 19:00, 22:00, 01:00, 04:00, 07:00 UTC
    method = SavedPaymentMethodFactory(customer=customer)
    AutopaySettings.objects.create(customer=customer, enabled=True, method=method, monthly_limit=Decimal("15.00"))
    AutopayCharge.objects.create(customer=customer, day=datetime(2027, 3, 28).date(), amount=Decimal("8.00"),
                                 currency="EUR", status=AutopayCharge.Status.SUCCEEDED)
    with time_machine.travel(now, tick=False):
        forecast = renewal_forecast(customer=customer)
        assert forecast == reference_forecast(customer=customer)
    expected = {"Europe/Amsterdam": ["autopay", "", "autopay", "autopay", "", ""],
                "UTC": ["autopay", "", "", "autopay", "autopay", ""]}[zone]
    assert [row.covered_by for row in forecast.rows] == expected


def test_one_customers_due_orders_are_the_jobs_and_its_statement_does_not_join_the_customer():
    """`due_for_auto_renewal(customer_id=...)` (the forecast's, the account default read once) finds exactly
    what the job's query finds for that customer, with the default on and off, also when the instance the
    page holds still has the other default."""
    from core.compiled import prepared_sql
    from orders.services.renewal_batch import due_for_auto_renewal

    now = datetime(2027, 5, 10, 9, tzinfo=UTC)
    plan = PlanFactory()
    for default in (True, False):
        customer = UserFactory().customer
        Order.objects.bulk_create(
            Order(customer=customer, plan=plan, period_months=1, price=Decimal("6.00"), currency="EUR",
                  status=Order.Status.ACTIVE, provisioning=Order.Provisioning.DONE, ip=f"198.51.100.{i + 1}",
                  anchor_at=now, anchor_months=1, period_started_at=now, expires_at=now + timedelta(days=i),
                  current_period=1, auto_renew=auto_renew)
            for i, auto_renew in enumerate([True, None, False, None]))
        customer.auto_renew_default = not default
        customer.save(update_fields=["auto_renew_default"])
        Customer.objects.filter(pk=customer.pk).update(auto_renew_default=default)  # another request changed it
        jobs = set(due_for_auto_renewal(now + timedelta(days=5)).filter(customer=customer).values_list("pk", flat=True))
        assert set(due_for_auto_renewal(now + timedelta(days=5), customer_id=customer.pk).values_list("pk", flat=True)) == jobs
        assert len(jobs) == (3 if default else 1)
        with time_machine.travel(now, tick=False), CaptureQueriesContext(connection) as queries:
            assert renewal_forecast(customer=customer).count == len(jobs)
        statement = next(prepared_sql(query["sql"]) for query in queries.captured_queries if "orders_order" in prepared_sql(query["sql"]))
        assert 'JOIN "accounts_customer"' not in statement
