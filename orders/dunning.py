"""Notices before an unpaid service is suspended and before it is terminated (issue 21, dunning).

The lifecycle job (`services.lifecycle.orders_lifecycle_run`) suspends an expired order `ORDERS_GRACE_DAYS` after
expiry and terminates a suspended one `ORDERS_TERMINATE_AFTER_DAYS` later. `ORDERS_SUSPENSION_NOTICE_DAYS`
and `ORDERS_TERMINATION_NOTICE_DAYS` before each (0: no notice), the customer gets a mandatory notice
with the date. Each goes out once per order and period: the notification's dedupe key
(`order:<id>:period:<n>:suspension_notice`, `order:<id>:termination_notice`) is unique, so parallel or
repeated runs send nothing twice (the returned counts are the notices actually created).
"""
from datetime import datetime, timedelta

from django.conf import settings
from django.urls import reverse

from notifications.kinds import Kind
from notifications.services import notify

from .models import Order
from .services.common import date_for_customer, order_label

Status = Order.Status


def _send(order: Order, kind: str, context: dict, dedupe_key: str) -> int:
    created = notify(customer=order.customer, kind=kind, context={"service": order_label(order), **context},
                     link=reverse("orders:order_detail", args=[order.pk]), dedupe_key=dedupe_key)
    return 1 if created is not None else 0


def suspension_notices_send(*, now: datetime) -> int:
    days = settings.ORDERS_SUSPENSION_NOTICE_DAYS
    if days <= 0:
        return 0
    grace = timedelta(days=settings.ORDERS_GRACE_DAYS)
    sent = 0
    due = (Order.objects.filter(status=Status.EXPIRED, expires_at__lte=now - grace + timedelta(days=days),
                                expires_at__gt=now - grace)
           .select_related("customer", "plan").order_by("pk"))
    for order in due:
        sent += _send(order, Kind.SERVICE_SUSPENSION_NOTICE, {"suspends_on": date_for_customer(order.expires_at + grace, order.customer)},
                      f"order:{order.pk}:period:{order.current_period}:suspension_notice")
    return sent


def termination_notices_send(*, now: datetime) -> int:
    days = settings.ORDERS_TERMINATION_NOTICE_DAYS
    if days <= 0:
        return 0
    after = timedelta(days=settings.ORDERS_GRACE_DAYS + settings.ORDERS_TERMINATE_AFTER_DAYS)
    sent = 0
    due = (Order.objects.filter(status=Status.SUSPENDED, expires_at__lte=now - after + timedelta(days=days), expires_at__gt=now - after)
           .select_related("customer", "plan").order_by("pk"))
    for order in due:
        sent += _send(order, Kind.SERVICE_TERMINATION_NOTICE, {"terminates_on": date_for_customer(order.expires_at + after, order.customer)},
                      f"order:{order.pk}:period:{order.current_period}:termination_notice")
    return sent
