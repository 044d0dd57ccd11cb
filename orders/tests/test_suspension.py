"""Suspension reasons (issue 15, item 3): staff suspensions survive renewals, renewing never shortens
a paid period, and the page and email tell the customer which kind of suspension it is."""
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from accounts.tests.factories import StaffUserFactory
from notifications.models import Notification
from orders.models import Order
from orders.services import lifecycle, placing, renewal_batch, renewing
from orders.services.staff import order_suspend, order_unsuspend

from .factories import PlanFactory, order_options

pytestmark = pytest.mark.django_db

PLACED = datetime(2026, 11, 4, 12, 0, tzinfo=dt_timezone.utc)
SUSPENDED_AT = datetime(2026, 12, 4, 9, 0, tzinfo=dt_timezone.utc)


def paid_to_4_february(customer, fund):
    """Order #… placed 4 Nov and renewed early: paid until 4 Feb."""
    fund(customer, "20.00")
    with time_machine.travel(PLACED, tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1,
                                    options=order_options(None), idempotency_key="paid-to-feb").order
        renewing.order_renew(order=order, periods=1, actor=None)
    order.refresh_from_db()
    assert order.expires_at == datetime(2027, 1, 4, 12, 0, tzinfo=dt_timezone.utc)
    fund(customer, "10.00")
    with time_machine.travel(PLACED + timedelta(days=1), tick=False):
        renewing.order_renew(order=order, periods=1, actor=None)
    order.refresh_from_db()
    assert order.expires_at == datetime(2027, 2, 4, 12, 0, tzinfo=dt_timezone.utc)
    return order


def test_renewing_a_staff_suspended_order_keeps_the_suspension_and_extends_from_expiry(customer, fund):
    order = paid_to_4_february(customer, fund)
    with time_machine.travel(SUSPENDED_AT, tick=False):
        order_suspend(order=order, actor=StaffUserFactory(), reason="abuse report")
        fund(customer, "10.00")
        result = renewing.order_renew(order=order, periods=1, actor=customer.users.first())
    order.refresh_from_db()
    assert result.paid
    assert order.status == Order.Status.SUSPENDED
    assert order.suspension_reason == Order.SuspensionReason.STAFF
    assert order.expires_at == datetime(2027, 3, 4, 12, 0, tzinfo=dt_timezone.utc)  # 4 Feb + 1 month, not 4 Jan
    call_command("audit_ledger")


def test_renewing_an_order_suspended_for_non_payment_restarts_today_and_lifts_it(customer, fund):
    fund(customer, "10.00")
    with time_machine.travel(PLACED, tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1,
                                    options=order_options(None), idempotency_key="unpaid").order
    order.refresh_from_db()
    Order.objects.filter(pk=order.pk).update(auto_renew=False)
    late = order.expires_at + timedelta(days=5)
    with time_machine.travel(late, tick=False):
        lifecycle.orders_lifecycle_run()
        lifecycle.orders_lifecycle_run()
        order.refresh_from_db()
        assert (order.status, order.suspension_reason) == (Order.Status.SUSPENDED, Order.SuspensionReason.NON_PAYMENT)
        fund(customer, "10.00")
        renewing.order_renew(order=order, periods=1, actor=None)
    order.refresh_from_db()
    assert (order.status, order.suspension_reason) == (Order.Status.ACTIVE, "")
    assert order.expires_at == datetime(2027, 1, 9, 12, 0, tzinfo=dt_timezone.utc)


def test_a_suspended_order_still_inside_its_paid_period_extends_from_expiry(customer, fund):
    order = paid_to_4_february(customer, fund)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.SUSPENDED,
                                             suspension_reason=Order.SuspensionReason.NON_PAYMENT)
    with time_machine.travel(SUSPENDED_AT, tick=False):
        fund(customer, "10.00")
        renewing.order_renew(order=order, periods=1, actor=None)
    order.refresh_from_db()
    assert order.status == Order.Status.ACTIVE
    assert order.expires_at == datetime(2027, 3, 4, 12, 0, tzinfo=dt_timezone.utc)


def test_the_renewal_job_never_lifts_a_staff_suspension(customer, fund):
    order = paid_to_4_february(customer, fund)
    with time_machine.travel(SUSPENDED_AT, tick=False):
        order_suspend(order=order, actor=StaffUserFactory(), reason="abuse report")
    fund(customer, "10.00")
    with time_machine.travel(order.expires_at - timedelta(hours=12), tick=False):
        summary = renewal_batch.renewals_run()
    order.refresh_from_db()
    assert summary.renewed == 1
    assert (order.status, order.suspension_reason) == (Order.Status.SUSPENDED, Order.SuspensionReason.STAFF)
    assert order.expires_at == datetime(2027, 3, 4, 12, 0, tzinfo=dt_timezone.utc)
    call_command("audit_ledger")


def test_staff_can_turn_a_non_payment_suspension_into_their_own_and_unsuspend_clears_it(customer, fund):
    order = paid_to_4_february(customer, fund)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.SUSPENDED,
                                             suspension_reason=Order.SuspensionReason.NON_PAYMENT)
    staff = StaffUserFactory()
    with time_machine.travel(SUSPENDED_AT, tick=False):
        order_suspend(order=order, actor=staff, reason="fraud check")
        order.refresh_from_db()
        assert order.suspension_reason == Order.SuspensionReason.STAFF
        order_unsuspend(order=order, actor=staff)
    order.refresh_from_db()
    assert (order.status, order.suspension_reason) == (Order.Status.ACTIVE, "")


def test_page_and_email_name_the_staff_suspension_and_ask_for_no_invoice(client, owner, customer, fund):
    order = paid_to_4_february(customer, fund)
    with time_machine.travel(SUSPENDED_AT, tick=False):
        order_suspend(order=order, actor=StaffUserFactory(), reason="abuse report")
        client.force_login(owner)
        detail = client.get(reverse("orders:order_detail", args=[order.pk])).content.decode()
        renew = client.get(reverse("orders:order_renew", args=[order.pk])).content.decode()
    assert "suspended by our staff" in detail and "non-payment" not in detail and "not renewed in time" not in detail
    assert "does not lift the suspension" in renew and "starts today" not in renew
    assert "02/04/2027" in renew  # the new period starts at the paid expiry (4 Feb)
    email = Notification.objects.get(customer=customer, kind="service_suspended")
    assert "Contact support" in email.body_text and "invoice" not in email.body_text.lower()
    assert "abuse report" in email.body_text


def test_email_for_a_non_payment_suspension_asks_to_renew(customer, fund):
    fund(customer, "10.00")
    with time_machine.travel(PLACED, tick=False):
        order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1,
                                    options=order_options(None), idempotency_key="unpaid").order
    Order.objects.filter(pk=order.pk).update(auto_renew=False)
    order.refresh_from_db()
    with time_machine.travel(order.expires_at + timedelta(days=5), tick=False):
        lifecycle.orders_lifecycle_run()
        lifecycle.orders_lifecycle_run()
    email = Notification.objects.get(customer=customer, kind="service_suspended")
    assert "Renew the service to restore it" in email.body_text and "invoice" not in email.body_text.lower()
