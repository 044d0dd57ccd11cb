"""Notices before suspension and termination (issue 21, dunning): mandatory, each once per order and
period, on the configured day before the lifecycle job acts."""
from datetime import timedelta

import pytest
import time_machine

from accounts.tests.factories import UserFactory
from notifications.models import EmailOutbox, Notification
from orders.models import Order
from orders.services import lifecycle

from .factories import PlanFactory
from .test_renewals import T0, active_orders


def _kinds(customer):
    return list(Notification.objects.filter(customer=customer, kind__in=["service_suspension_notice", "service_termination_notice"])
                .order_by("pk").values_list("kind", flat=True))


@pytest.mark.django_db
def test_suspension_and_termination_are_announced_once_before_they_happen(settings, currencies):
    settings.ORDERS_GRACE_DAYS, settings.ORDERS_TERMINATE_AFTER_DAYS = 3, 14
    settings.ORDERS_SUSPENSION_NOTICE_DAYS, settings.ORDERS_TERMINATION_NOTICE_DAYS = 1, 3
    customer = UserFactory().customer
    [order] = active_orders([customer], PlanFactory(), per_customer=1, now=T0)
    order.refresh_from_db()
    expires = order.expires_at

    def run(at):
        with time_machine.travel(at, tick=False):
            lifecycle.orders_lifecycle_run()
            return lifecycle.orders_lifecycle_run()  # a second run sends nothing again

    run(expires + timedelta(days=2) - timedelta(minutes=1))
    assert _kinds(customer) == []
    assert run(expires + timedelta(days=2, minutes=1)).suspension_notices == 0  # sent by the first of the pair
    assert _kinds(customer) == ["service_suspension_notice"]
    notice = Notification.objects.get(kind="service_suspension_notice")
    assert notice.context["suspends_on"] and "will be suspended on" in notice.subject
    run(expires + timedelta(days=3, hours=1))
    order.refresh_from_db()
    assert order.status == Order.Status.SUSPENDED
    run(expires + timedelta(days=14) - timedelta(minutes=1))  # termination at expiry + 17 days; notice 3 days before
    assert _kinds(customer) == ["service_suspension_notice"]
    run(expires + timedelta(days=14, hours=1))
    assert _kinds(customer) == ["service_suspension_notice", "service_termination_notice"]
    run(expires + timedelta(days=17, hours=1))
    order.refresh_from_db()
    assert order.status == Order.Status.TERMINATED and len(_kinds(customer)) == 2
    # Mandatory: emailed even to a customer who turned every optional email off.
    assert EmailOutbox.objects.filter(kind__in=["service_suspension_notice", "service_termination_notice"]).count() == 2
