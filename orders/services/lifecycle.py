"""The lifecycle job: cancellations at period end, expiry, suspension after the grace period,
termination, expiring-soon and dunning notices, and unpaid orders cancelled."""
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from notifications.kinds import Kind

from .. import dunning, promo, provisioning
from ..models import Order
from .common import Source, Status, date_for_customer, event_record, order_notify
from .cancelling import order_end
from .renewing import RENEWABLE


@dataclass
class LifecycleSummary:
    expired: int = 0
    suspended: int = 0
    terminated: int = 0
    cancelled_at_period_end: int = 0
    cancelled_unpaid: int = 0
    expiry_notices: int = 0
    suspension_notices: int = 0
    termination_notices: int = 0

    def __str__(self) -> str:
        return ", ".join(f"{name.replace('_', ' ')}: {value}" for name, value in vars(self).items())


def _each_locked(queryset, handle, *, chunk_size: int) -> int:
    """Apply `handle(order)` to every row of `queryset`, a chunk of rows per transaction, skipping rows
    another worker holds (they are handled by it, or by the next run)."""
    done, after = 0, 0
    while True:
        with transaction.atomic():
            chunk = list(queryset.filter(pk__gt=after).select_related("plan", "customer")
                         .select_for_update(skip_locked=True, of=("self",)).order_by("pk")[:chunk_size])
            for order in chunk:
                handle(order)
        if not chunk:
            return done
        done += len(chunk)
        after = chunk[-1].pk


def orders_lifecycle_run(*, now: datetime | None = None, chunk_size: int | None = None) -> LifecycleSummary:
    """One pass of the lifecycle: cancellations at period end, expiry, suspension after the grace
    period, termination, expiring-soon notices, and unpaid orders cancelled. Idempotent."""
    now = now or timezone.now()
    chunk_size = chunk_size or settings.ORDERS_JOB_CHUNK_SIZE
    grace = timedelta(days=settings.ORDERS_GRACE_DAYS)
    terminate_after = timedelta(days=settings.ORDERS_GRACE_DAYS + settings.ORDERS_TERMINATE_AFTER_DAYS)
    summary = LifecycleSummary()

    def cancel_at_end(order: Order) -> None:
        order_end(order, status=Status.CANCELLED, action="cancelled_at_period_end", source=Source.SYSTEM)

    summary.cancelled_at_period_end = _each_locked(
        Order.objects.filter(status__in=RENEWABLE, cancel_at_period_end=True, expires_at__lte=now), cancel_at_end,
        chunk_size=chunk_size)

    def expire(order: Order) -> None:
        order.status = Status.EXPIRED
        order.save(update_fields=["status"])
        event_record(order=order, action="expired", source=Source.SYSTEM, from_status=Status.ACTIVE)

    summary.expired = _each_locked(Order.objects.filter(status=Status.ACTIVE, expires_at__lte=now), expire,
                                   chunk_size=chunk_size)

    def suspend(order: Order) -> None:
        previous = order.status
        order.status = Status.SUSPENDED
        order.suspension_reason = Order.SuspensionReason.NON_PAYMENT
        order.save(update_fields=["status", "suspension_reason"])
        event_record(order=order, action="suspended", source=Source.SYSTEM, from_status=previous,
                     details={"reason": "unpaid"})
        provisioning.on_suspended(order)
        with translation.override(order.customer.language):
            reason = _("The service was not renewed within %(days)s days after it expired.") % {"days": settings.ORDERS_GRACE_DAYS}
        order_notify(order=order, kind=Kind.SERVICE_SUSPENDED,
                context={"reason": reason, "suspension_reason": Order.SuspensionReason.NON_PAYMENT.value},
                dedupe_key=f"order:{order.pk}:period:{order.current_period}:suspended")

    summary.suspended = _each_locked(Order.objects.filter(status=Status.EXPIRED, expires_at__lte=now - grace), suspend,
                                     chunk_size=chunk_size)

    def terminate(order: Order) -> None:
        order_end(order, status=Status.TERMINATED, action="terminated", source=Source.SYSTEM, reason="unpaid")
        with translation.override(order.customer.language):
            reason = _("The service stayed unpaid and suspended.")
        order_notify(order=order, kind=Kind.SERVICE_TERMINATED, context={"reason": reason}, dedupe_key=f"order:{order.pk}:terminated")

    summary.terminated = _each_locked(Order.objects.filter(status=Status.SUSPENDED, expires_at__lte=now - terminate_after),
                                      terminate, chunk_size=chunk_size)

    def cancel_unpaid(order: Order) -> None:
        order_end(order, status=Status.CANCELLED, action="cancelled_unpaid", source=Source.SYSTEM,
             reason=f"unpaid for {settings.ORDERS_PENDING_CANCEL_DAYS} days")
        promo.promo_release(order=order)

    summary.cancelled_unpaid = _each_locked(
        Order.objects.filter(status=Status.PENDING, paid_at__isnull=True,
                             created_at__lte=now - timedelta(days=settings.ORDERS_PENDING_CANCEL_DAYS)),
        cancel_unpaid, chunk_size=chunk_size)

    thresholds = sorted(settings.ORDERS_EXPIRY_NOTICE_DAYS)
    for days in thresholds:
        smaller = [d for d in thresholds if d < days]
        floor = now + timedelta(days=max(smaller)) if smaller else now

        def notice(order: Order, days=days) -> None:
            order.expiry_notice_days = days
            order.save(update_fields=["expiry_notice_days"])
            customer = order.customer
            order_notify(order=order, kind=Kind.SERVICE_EXPIRING, dedupe_key=f"order:{order.pk}:period:{order.current_period}:expiring:{days}d",
                    context={"expires_at": date_for_customer(order.expires_at, customer), "days_left": str(days)})

        summary.expiry_notices += _each_locked(
            Order.objects.filter(status=Status.ACTIVE, cancel_at_period_end=False, expires_at__gt=floor,
                                 expires_at__lte=now + timedelta(days=days))
            .filter(Q(expiry_notice_days__isnull=True) | Q(expiry_notice_days__gt=days)),
            notice, chunk_size=chunk_size)
    summary.suspension_notices = dunning.suspension_notices_send(now=now)
    summary.termination_notices = dunning.termination_notices_send(now=now)
    return summary
