"""Staff actions (admin): suspend, unsuspend, terminate and extend an order, each in the staff audit."""
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from notifications.kinds import Kind

from .. import pricing, provisioning
from ..models import Order
from .common import Source, Status, event_record, order_lock, order_notify, staff_audit_record
from .cancelling import order_end
from .renewing import RENEWABLE


@transaction.atomic
def order_suspend(*, order: Order, actor: User, reason: str = "") -> Order:
    """Staff: suspend (abuse, a dispute…). Only staff lift it: paying a renewal keeps it suspended. A
    service already suspended for non-payment becomes staff-suspended, so paying no longer lifts it."""
    order = order_lock(order)
    staff_may_suspend = order.status in (Status.ACTIVE, Status.EXPIRED) or (
        order.status == Status.SUSPENDED and order.suspension_reason != Order.SuspensionReason.STAFF)
    if not staff_may_suspend:
        raise ValidationError(_("Only active, expired or unpaid suspended services can be suspended by staff."))
    previous = order.status
    order.status = Status.SUSPENDED
    order.suspension_reason = Order.SuspensionReason.STAFF
    order.save(update_fields=["status", "suspension_reason"])
    event_record(order=order, action="suspended", source=Source.STAFF, actor=actor, from_status=previous,
                 details={"reason": reason} if reason else None)
    provisioning.on_suspended(order, actor=actor)
    staff_audit_record(order=order, actor=actor, action="order_suspend", details={"reason": reason})
    order_notify(order=order, kind=Kind.SERVICE_SUSPENDED,
            context={"reason": reason, "suspension_reason": Order.SuspensionReason.STAFF.value},
            dedupe_key=f"order:{order.pk}:period:{order.current_period}:suspended:staff:{timezone.now():%Y%m%d%H%M%S}")
    return order


@transaction.atomic
def order_unsuspend(*, order: Order, actor: User) -> Order:
    order = order_lock(order)
    if order.status != Status.SUSPENDED:
        raise ValidationError(_("Only suspended services can be unsuspended."))
    order.status = Status.ACTIVE if order.expires_at > timezone.now() else Status.EXPIRED
    order.suspension_reason = Order.SuspensionReason.NONE
    order.save(update_fields=["status", "suspension_reason"])
    event_record(order=order, action="unsuspended", source=Source.STAFF, actor=actor, from_status=Status.SUSPENDED)
    provisioning.on_unsuspended(order, actor=actor)
    staff_audit_record(order=order, actor=actor, action="order_unsuspend")
    return order


@transaction.atomic
def order_terminate(*, order: Order, actor: User, reason: str = "") -> Order:
    order = order_lock(order)
    if order.status in (Status.TERMINATED, Status.CANCELLED):
        raise ValidationError(_("This service has already ended."))
    order_end(order, status=Status.TERMINATED, action="terminated", source=Source.STAFF, actor=actor, reason=reason)
    staff_audit_record(order=order, actor=actor, action="order_terminate", details={"reason": reason})
    order_notify(order=order, kind=Kind.SERVICE_TERMINATED, context={"reason": reason}, dedupe_key=f"order:{order.pk}:terminated")
    return order


@transaction.atomic
def order_extend(*, order: Order, actor: User, days: int, reason: str = "") -> Order:
    """Staff: add free days (compensation); an expired order becomes active again if it now runs.

    The expiry moves by exactly `days` calendar days in the customer's zone, and the order is
    re-anchored on it (no months counted yet), so every later period is a whole month from the new
    expiry (docs/ARCHITECTURE.md, "Orders")."""
    if not 1 <= days <= 366:
        raise ValidationError(_("Extend by 1 to 366 days."))
    order = order_lock(order)
    if order.status not in RENEWABLE:
        raise ValidationError(_("Only active, expired or suspended services can be extended."))
    previous = order.status
    order.expires_at = pricing.add_days(order.expires_at, days, pricing.order_zone(order))
    order.anchor_at, order.anchor_months = order.expires_at, 0
    if order.status == Status.EXPIRED and order.expires_at > timezone.now():
        order.status = Status.ACTIVE
    order.save(update_fields=["anchor_at", "anchor_months", "expires_at", "status"])
    event_record(order=order, action="extended", source=Source.STAFF, actor=actor, from_status=previous,
                 details={"days": days, "reason": reason, "expires_at": order.expires_at.isoformat()})
    staff_audit_record(order=order, actor=actor, action="order_extend", details={"days": days, "reason": reason})
    return order
