from decimal import Decimal

import pytest

from accounts.tests.factories import UserFactory
from billing.tests.concurrency import run_concurrently
from billing.tests.factories import make_currencies
from orders.models import IpAddress, Order
from orders.services import cancelling, placing

from .factories import PlanFactory


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_orders_for_a_pool_of_ten_get_ten_distinct_addresses():
    from billing.services.payments import payment_record

    make_currencies()
    plan = PlanFactory(ip_pool__size=10)
    customers = [UserFactory().customer for _ in range(20)]
    for customer in customers:
        payment_record(idempotency_key=f"pool:{customer.pk}", customer=customer, amount=Decimal("10.00"),
                       currency="EUR", method="bank_transfer")
    _results, errors = run_concurrently(
        lambda customer: placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options={},
                                             idempotency_key=f"pool-order:{customer.pk}"),
        [(customer,) for customer in customers])
    assert not errors
    active = Order.objects.filter(status=Order.Status.ACTIVE)
    assert active.count() == 10
    assert len(set(active.values_list("ip", flat=True))) == 10
    assert IpAddress.objects.filter(order__isnull=False).count() == 10
    waiting = Order.objects.filter(status=Order.Status.PENDING, provisioning=Order.Provisioning.WAITING_STAFF)
    assert waiting.count() == 10
    assert all(o.paid_at and "exhausted" in o.provisioning_note for o in waiting)
    # Staff add addresses and retry: a waiting order gets one.
    order = waiting.first()
    IpAddress.objects.create(pool=plan.ip_pool, address="192.0.2.200")
    staff = UserFactory(customer=None, is_staff=True)
    assert placing.order_provision_retry(order=order, actor=staff)
    order.refresh_from_db()
    assert order.status == Order.Status.ACTIVE and order.ip == "192.0.2.200"


@pytest.mark.django_db
def test_termination_releases_the_address_for_the_next_order(customer, fund):
    fund(customer, "100.00")
    plan = PlanFactory(ip_pool__size=1)
    first = placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options={}, idempotency_key="1").order
    second = placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options={}, idempotency_key="2").order
    assert second.provisioning == Order.Provisioning.WAITING_STAFF
    cancelling.order_cancel(order=first, actor=None, immediately=True)
    staff = UserFactory(customer=None, is_staff=True)
    placing.order_provision_retry(order=second, actor=staff)
    second.refresh_from_db()
    assert second.ip == first.ip and second.status == Order.Status.ACTIVE
