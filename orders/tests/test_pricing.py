"""Proration on real calendar days, and prices converted from the base currency."""
from datetime import date, datetime, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError

from orders import pricing
from orders.models import PlanPrice
from orders.services import placing, plan_change, renewing

from .factories import PlanFactory


def prorate(old, new, start, end, today, currency="EUR"):
    return pricing.prorate(old_price=Decimal(old), new_price=Decimal(new), period_start=start, period_end=end,
                           today=today, currency=currency)


@pytest.mark.parametrize("start,end,today,days,remaining,amount", [
    # First day of the period: the whole difference.
    (date(2026, 4, 1), date(2026, 5, 1), date(2026, 4, 1), 30, 30, "30.00"),
    # Last day: one day of thirty.
    (date(2026, 4, 1), date(2026, 5, 1), date(2026, 4, 30), 30, 1, "1.00"),
    # Month end: Jan 31 -> Feb 28 is 28 days in a common year.
    (date(2026, 1, 31), date(2026, 2, 28), date(2026, 2, 14), 28, 14, "15.00"),
    # Leap year: Feb 2028 has 29 days; upgrading on the leap day.
    (date(2028, 2, 1), date(2028, 3, 1), date(2028, 2, 29), 29, 1, "1.03"),
    (date(2028, 1, 31), date(2028, 2, 29), date(2028, 2, 1), 29, 28, "28.97"),
    # 12-month period across a leap day: 366 days.
    (date(2027, 6, 1), date(2028, 6, 1), date(2027, 12, 1), 366, 183, "15.00"),
])
def test_prorated_upgrade_on_calendar_days(start, end, today, days, remaining, amount):
    # 30.00 difference for the months above, 30.00 a year for the 12-month row.
    result = prorate("10.00", "40.00", start, end, today)
    assert (result.period_days, result.remaining_days, result.amount) == (days, remaining, Decimal(amount))


def test_half_up_rounding_happens_once_on_the_result():
    result = prorate("0.00", "10.00", date(2026, 4, 1), date(2026, 5, 1), date(2026, 4, 30))
    assert result.amount == Decimal("0.33")  # 10 × 1/30 = 0.333…


def test_zero_decimal_currency_rounds_to_whole_yen():
    result = prorate("1000", "2500", date(2026, 4, 1), date(2026, 5, 1), date(2026, 4, 21), currency="JPY")
    assert result.amount == Decimal("500")  # 1500 × 10/30
    odd = prorate("1000", "2000", date(2026, 1, 1), date(2026, 2, 1), date(2026, 1, 30), currency="JPY")
    assert odd.amount == Decimal("65")  # 1000 × 2/31 = 64.5 → 65 (half up)
    assert odd.amount.as_tuple().exponent == 0


def test_downgrade_and_period_end_cost_nothing():
    assert prorate("40.00", "10.00", date(2026, 4, 1), date(2026, 5, 1), date(2026, 4, 10)).amount == 0
    assert prorate("10.00", "40.00", date(2026, 4, 1), date(2026, 5, 1), date(2026, 5, 1)).remaining_days == 0


@pytest.mark.django_db
def test_upgrade_of_a_12_month_order_in_jpy(owner, fund):
    customer = owner.customer
    customer.currency = customer.site_currency = "JPY"
    customer.save()
    fund(customer, "100000", "JPY")
    small = PlanFactory(prices={(12, "JPY"): "12000"})
    big = PlanFactory(product_type=small.product_type, prices={(12, "JPY"): "24000"})
    with time_machine.travel(datetime(2027, 6, 1, tzinfo=dt_timezone.utc), tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=small, period_months=12, options={}, idempotency_key="j").order
    assert order.expires_at == datetime(2028, 6, 1, tzinfo=dt_timezone.utc)
    with time_machine.travel(datetime(2028, 2, 29, 12, tzinfo=dt_timezone.utc), tick=False):
        quote = plan_change.plan_change_quote(order=order, plan=big)
    assert (quote.proration.remaining_days, quote.proration.period_days) == (93, 366)
    assert quote.proration.amount == Decimal("3049")  # 12000 × 93/366 = 3049.18 → 3049


@pytest.mark.django_db
def test_price_missing_in_a_currency_is_converted_from_the_base_at_the_current_rate(currencies):
    plan = PlanFactory()  # EUR prices only
    price = pricing.plan_price(plan=plan, period_months=1, currency="USD")
    assert price.is_converted and price.converted_from == "EUR" and price.rate == Decimal("1.1607")
    assert price.amount == Decimal("11.61")
    PlanPrice.objects.create(plan=plan, period_months=1, currency="USD", amount=Decimal("12.00"))
    assert pricing.plan_price(plan=plan, period_months=1, currency="USD").amount == Decimal("12.00")
    with pytest.raises(ValidationError):
        pricing.plan_price(plan=plan, period_months=2, currency="EUR")


def test_month_arithmetic_clamps_without_drifting():
    anchor = datetime(2026, 1, 31, 9, tzinfo=dt_timezone.utc)
    assert [pricing.add_months(anchor, n).date() for n in (1, 2, 3, 13)] == [
        date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2027, 2, 28)]


@pytest.mark.django_db
def test_upgrade_after_an_early_renewal_also_covers_the_periods_paid_ahead(customer, fund):
    fund(customer, "200.00")
    small = PlanFactory()
    big = PlanFactory(product_type=small.product_type, prices={(1, "EUR"): "40.00"})
    with time_machine.travel(datetime(2026, 4, 1, tzinfo=dt_timezone.utc), tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=small, period_months=1, options={}, idempotency_key="e").order
    with time_machine.travel(datetime(2026, 4, 16, tzinfo=dt_timezone.utc), tick=False):
        renewing.order_renew(order=order, periods=2, actor=None)  # paid through 1 July
        order.refresh_from_db()
        quote = plan_change.plan_change_quote(order=order, plan=big)
    # April: 15 of 30 days, then May and June in full: 30 × (15/30 + 2) = 75.00
    assert (quote.proration.remaining_days, quote.proration.period_days, quote.proration.later_periods) == (15, 30, 2)
    assert quote.proration.amount == Decimal("75.00")
    assert order.period_started_at == datetime(2026, 4, 1, tzinfo=dt_timezone.utc)
