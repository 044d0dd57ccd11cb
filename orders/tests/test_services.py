from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError

from billing.models import Invoice
from billing.selectors import balance_of
from orders.models import Order, OrderEvent, OrderRenewal
from orders.services import cancelling, lifecycle, placing, plan_change, renewing

from .factories import PlanFactory, order_options

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=dt_timezone.utc)


def place(customer, plan, months=1, key="k1", actor=None):
    return placing.order_place(customer=customer, actor=actor, plan=plan, period_months=months,
                               options=order_options(plan), idempotency_key=key)


@time_machine.travel(T0, tick=False)
def test_order_paid_from_balance_is_active_with_pool_ip(customer, fund):
    fund(customer, "50.00")
    plan = PlanFactory()
    placed = place(customer, plan)
    order = placed.order
    assert placed.paid and placed.invoice.status == Invoice.Status.PAID
    assert order.status == Order.Status.ACTIVE and order.ip.startswith("10.")
    assert order.expires_at == datetime(2026, 4, 10, 12, 0, tzinfo=dt_timezone.utc)
    assert order.current_period == 1
    assert balance_of(customer) == Decimal("40.00")
    assert placed.invoice.reference == f"order:{order.pk}"
    assert list(order.events.values_list("action", flat=True).order_by("pk")) == ["placed", "paid", "activated"]


def test_order_without_funds_stays_pending_with_unpaid_invoice(customer, currencies):
    placed = place(customer, PlanFactory())
    assert not placed.paid
    assert placed.order.status == Order.Status.PENDING
    assert placed.invoice.status == Invoice.Status.UNPAID


def test_same_submission_twice_makes_one_order(customer, fund):
    fund(customer, "50.00")
    plan = PlanFactory()
    first = place(customer, plan, key="same")
    second = place(customer, plan, key="same")
    assert first.order.pk == second.order.pk
    assert Order.objects.count() == 1 and balance_of(customer) == Decimal("40.00")


def test_setup_fee_is_on_the_first_invoice(customer, fund):
    fund(customer, "100.00")
    plan = PlanFactory(setup_fee=Decimal("15.00"))
    placed = place(customer, plan)
    assert placed.invoice.subtotal == Decimal("25.00")
    assert balance_of(customer) == Decimal("75.00")


def test_out_of_stock_plan_cannot_be_ordered(customer, fund):
    fund(customer, "100.00")
    plan = PlanFactory(stock=1)
    place(customer, plan, key="a")
    with pytest.raises(ValidationError):
        place(customer, plan, key="b")


def test_manual_renewal_extends_from_expiry_and_charges_once(customer, fund):
    fund(customer, "100.00")
    with time_machine.travel(T0, tick=False):
        order = place(customer, PlanFactory()).order
    with time_machine.travel(datetime(2026, 3, 20, tzinfo=dt_timezone.utc), tick=False):
        result = renewing.order_renew(order=order, periods=3, actor=None)
    order.refresh_from_db()
    assert result.paid
    # Early renewal loses nothing: 10 Mar + 1 month + 3 months.
    assert order.expires_at == datetime(2026, 7, 10, 12, 0, tzinfo=dt_timezone.utc)
    assert order.current_period == 4
    assert balance_of(customer) == Decimal("60.00")
    assert OrderRenewal.objects.get(order=order).period == 2


def test_renewal_of_a_suspended_order_starts_today_and_unsuspends(customer, fund):
    with time_machine.travel(T0, tick=False):
        fund(customer, "10.00")
        order = place(customer, PlanFactory()).order
    Order.objects.filter(pk=order.pk).update(status=Order.Status.SUSPENDED)
    fund(customer, "10.00")
    with time_machine.travel(datetime(2026, 5, 1, 9, 0, tzinfo=dt_timezone.utc), tick=False):
        renewing.order_renew(order=order, periods=1, actor=None)
    order.refresh_from_db()
    assert order.status == Order.Status.ACTIVE
    assert order.expires_at == datetime(2026, 6, 1, 9, 0, tzinfo=dt_timezone.utc)


def test_renewal_without_funds_leaves_an_invoice_that_renews_when_paid(customer, fund, django_capture_on_commit_callbacks):
    with time_machine.travel(T0, tick=False):
        fund(customer, "10.00")
        order = place(customer, PlanFactory()).order
        result = renewing.order_renew(order=order, periods=1, actor=None)
    assert not result.paid and result.invoice.status == Invoice.Status.UNPAID
    assert balance_of(customer) == Decimal("0.00")
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        fund(customer, "10.00")  # billing pays open service invoices after a top-up
    order.refresh_from_db()
    assert order.current_period == 2
    assert order.expires_at == datetime(2026, 5, 10, 12, 0, tzinfo=dt_timezone.utc)


def test_invalid_period_counts_are_refused(customer, fund):
    fund(customer, "10.00")
    order = place(customer, PlanFactory()).order
    for periods in (0, -1, 13):
        with pytest.raises(ValidationError):
            renewing.order_renew(order=order, periods=periods, actor=None)


def test_cancel_pending_order_cancels_its_invoice(customer, currencies):
    placed = place(customer, PlanFactory(stock=3))
    cancelling.order_cancel(order=placed.order, actor=None)
    placed.order.refresh_from_db(); placed.invoice.refresh_from_db()
    assert placed.order.status == Order.Status.CANCELLED
    assert placed.invoice.status == Invoice.Status.CANCELLED
    assert placed.order.plan.__class__.objects.get(pk=placed.order.plan_id).stock == 3


def test_cancel_active_at_period_end_then_lifecycle_ends_it(customer, fund):
    fund(customer, "10.00")
    with time_machine.travel(T0, tick=False):
        order = place(customer, PlanFactory()).order
        cancelling.order_cancel(order=order, actor=None)
    order.refresh_from_db()
    assert order.status == Order.Status.ACTIVE and order.cancel_at_period_end
    with time_machine.travel(datetime(2026, 4, 11, tzinfo=dt_timezone.utc), tick=False):
        lifecycle.orders_lifecycle_run()
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED and order.ip and not hasattr(order, "pool_address_cached")
    assert not order.__class__.objects.filter(pk=order.pk, pool_address__isnull=False).exists()


def test_cancel_immediately_releases_the_ip(customer, fund):
    fund(customer, "10.00")
    order = place(customer, PlanFactory()).order
    cancelling.order_cancel(order=order, actor=None, immediately=True)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert not Order.objects.filter(pk=order.pk, pool_address__isnull=False).exists()
    assert OrderEvent.objects.filter(order=order, action="cancelled", to_status="cancelled").exists()


def test_upgrade_charges_the_prorated_difference_and_switches_plan(customer, fund):
    fund(customer, "100.00")
    small = PlanFactory()
    big = PlanFactory(product_type=small.product_type, prices={(1, "EUR"): "40.00"})
    with time_machine.travel(datetime(2026, 4, 1, tzinfo=dt_timezone.utc), tick=False):
        order = place(customer, small).order  # 1 Apr – 1 May: 30 days
    with time_machine.travel(datetime(2026, 4, 16, 10, tzinfo=dt_timezone.utc), tick=False):
        quote = plan_change.plan_change_quote(order=order, plan=big)
        assert quote.proration.remaining_days == 15 and quote.proration.period_days == 30
        assert quote.proration.amount == Decimal("15.00")
        result = plan_change.order_change_plan(order=order, plan=big, actor=None, expected_amount=Decimal("15.00"))
    assert result.paid
    order.refresh_from_db()
    assert order.plan == big and order.price == Decimal("40.00")
    assert balance_of(customer) == Decimal("75.00")


def test_upgrade_with_a_stale_amount_changes_nothing(customer, fund):
    fund(customer, "100.00")
    small = PlanFactory()
    big = PlanFactory(product_type=small.product_type, prices={(1, "EUR"): "40.00"})
    order = place(customer, small).order
    with pytest.raises(ValidationError):
        plan_change.order_change_plan(order=order, plan=big, actor=None, expected_amount=Decimal("1.00"))
    order.refresh_from_db()
    assert order.plan == small


def test_downgrade_is_scheduled_and_applied_at_renewal(customer, fund):
    fund(customer, "100.00")
    big = PlanFactory(prices={(1, "EUR"): "40.00"})
    small = PlanFactory(product_type=big.product_type)
    order = place(customer, big).order
    result = plan_change.order_change_plan(order=order, plan=small, actor=None)
    assert result.scheduled
    order.refresh_from_db()
    assert order.plan == big and order.scheduled_plan == small
    renewing.order_renew(order=order, periods=1, actor=None)
    order.refresh_from_db()
    assert order.plan == small and order.price == Decimal("10.00") and order.scheduled_plan is None
    assert balance_of(customer) == Decimal("50.00")


def test_plan_change_notification_names_the_old_and_the_new_plan(customer, fund, django_capture_on_commit_callbacks):
    from notifications.models import Notification

    fund(customer, "100.00")
    small = PlanFactory(name="VPS Start")
    big = PlanFactory(name="VPS Pro", product_type=small.product_type, prices={(1, "EUR"): "40.00"})
    with time_machine.travel(datetime(2026, 4, 1, tzinfo=dt_timezone.utc), tick=False):
        order = place(customer, small).order
    with time_machine.travel(datetime(2026, 4, 16, 10, tzinfo=dt_timezone.utc), tick=False), \
            django_capture_on_commit_callbacks(execute=True):
        quote = plan_change.plan_change_quote(order=order, plan=big)
        plan_change.order_change_plan(order=order, plan=big, actor=None, expected_amount=quote.proration.amount)
    notice = Notification.objects.get(customer=customer, kind="plan_changed")
    # Was "Plan of #N VPS Pro changed to VPS Pro": the service was named by its new plan.
    assert notice.subject == f"Plan of #{order.pk} VPS Start ({order.ip}) changed to VPS Pro"
