"""Auto-payment tops up for the next month of services, as its page promises (issue 15, item 14)."""
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine

from billing.gateways import services as gateway_services
from billing.gateways.models import AutopayCharge, SandboxCard
from billing.gateways.tests.factories import GatewayConfigFactory, SavedPaymentMethodFactory
from billing.selectors import balance_of
from orders.models import Order

from .factories import PlanFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def autopay(customer, currencies, fund):
    GatewayConfigFactory(code="sandbox")
    SandboxCard.objects.create(id="card_next_month", customer_ref=str(customer.pk), brand="visa", last4="4242",
                               exp_month=12, exp_year=2031, behaviour="succeed")
    method = SavedPaymentMethodFactory(customer=customer, token="card_next_month", is_default=True)
    customer.low_balance_threshold = Decimal("20.00")
    customer.save()
    fund(customer, "5.00")

    def configure(cap):
        gateway_services.card_auto_top_up_configure(customer=customer, enabled=True, method=method, monthly_limit=Decimal(cap))

    return configure


def running_order(customer, price, expires_in_days, **fields):
    plan = PlanFactory(prices={(1, "EUR"): price})
    start = NOW + timedelta(days=expires_in_days) - timedelta(days=31)
    return Order.objects.create(customer=customer, plan=plan, period_months=1, price=Decimal(price), currency="EUR",
                                status=Order.Status.ACTIVE, anchor_at=start, anchor_months=1, period_started_at=start,
                                expires_at=NOW + timedelta(days=expires_in_days), current_period=1, **fields)


def test_the_job_tops_up_enough_for_the_renewals_due_next_month(customer, autopay):
    autopay("500.00")
    running_order(customer, "100.00", 3)
    running_order(customer, "85.00", 10)
    running_order(customer, "50.00", 20)
    running_order(customer, "70.00", 45)  # after next month: not counted
    running_order(customer, "40.00", 5, auto_renew=False)  # not renewed automatically: not counted
    with time_machine.travel(NOW, tick=False):
        assert gateway_services.card_auto_top_ups_run() == 1
    # 235 of renewals due within the month, minus the 5 on the balance (the threshold is smaller).
    assert AutopayCharge.objects.get().amount == Decimal("230.00")
    assert balance_of(customer) == Decimal("235.00")


def test_the_monthly_maximum_still_caps_the_top_up(customer, autopay):
    autopay("100.00")
    running_order(customer, "100.00", 3)
    running_order(customer, "85.00", 10)
    with time_machine.travel(NOW, tick=False):
        assert gateway_services.card_auto_top_ups_run() == 1
    assert AutopayCharge.objects.get().amount == Decimal("100.00")


def test_a_healthy_balance_is_not_topped_up_ahead_of_time(customer, autopay, fund):
    autopay("500.00")
    fund(customer, "20.00")  # 25: above the threshold, and no renewal invoice is waiting
    running_order(customer, "100.00", 10)
    with time_machine.travel(NOW, tick=False):
        assert gateway_services.card_auto_top_ups_run() == 0
    assert not AutopayCharge.objects.exists()
