"""The auto-renewal toggle, and cancelling an order (now or at the end of its paid period); `order_end`
is how every path ends an order."""
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from billing.models import Invoice
from billing.services.invoices import invoice_cancel

from .. import provisioning
from ..models import Order, OrderRenewal, Plan, PlanChange
from .common import Status, event_record, event_source_for, order_lock
from .renewing import RENEWABLE


def effective_auto_renew(order: Order) -> bool:
    return order.customer.auto_renew_default if order.auto_renew is None else order.auto_renew


@transaction.atomic
def order_set_auto_renew(*, order: Order, auto_renew: bool | None, actor: User) -> Order:
    order = order_lock(order)
    if order.status in (Status.TERMINATED, Status.CANCELLED):
        raise ValidationError(_("This service has ended."), code="ended")
    order.auto_renew = auto_renew
    order.save(update_fields=["auto_renew"])
    event_record(order=order, action="auto_renew_changed", source=event_source_for(actor), actor=actor,
                 details={"auto_renew": "default" if auto_renew is None else auto_renew})
    return order


def _cancel_open_invoices(order: Order, reason: str) -> None:
    """Cancel this order's unpaid invoices (first period, renewals, upgrades) so nothing stale gets paid."""
    ids = set(OrderRenewal.objects.filter(order=order, status=OrderRenewal.Status.PENDING).values_list("invoice_id", flat=True))
    ids |= set(PlanChange.objects.filter(order=order, status=PlanChange.Status.PENDING).values_list("invoice_id", flat=True))
    if order.invoice_id and order.paid_at is None:
        ids.add(order.invoice_id)
    for invoice in Invoice.objects.filter(pk__in=[i for i in ids if i], status__in=Invoice.OPEN_STATUSES).order_by("pk"):
        invoice_cancel(invoice=invoice, reason=reason)
    # An unpaid renewal charged nothing: dropping it frees its period for a later renewal.
    OrderRenewal.objects.filter(order=order, status=OrderRenewal.Status.PENDING).delete()
    PlanChange.objects.filter(order=order, status=PlanChange.Status.PENDING).update(status=PlanChange.Status.CANCELLED)


def order_end(order: Order, *, status: str, action: str, source: str, actor: User | None = None, reason: str = "") -> None:
    previous = order.status
    order.status = status
    order.ended_at = timezone.now()
    order.save(update_fields=["status", "ended_at"])
    provisioning.release(order, actor=actor)
    _cancel_open_invoices(order, reason=action)
    if previous == Status.PENDING and order.paid_at is None and order.plan.stock is not None:
        Plan.objects.filter(pk=order.plan_id).update(stock=F("stock") + 1)
    event_record(order=order, action=action, source=source, actor=actor, from_status=previous, details={"reason": reason} if reason else None)


@transaction.atomic
def order_cancel(*, order: Order, actor: User | None, immediately: bool = False) -> Order:
    """Pending: cancelled at once with its invoice. Active: at the end of the paid period (or now if
    `immediately`); unused time is not refunded automatically."""
    order = order_lock(order)
    if order.status == Status.PENDING:
        if order.paid_at is not None:
            raise ValidationError(_("This order is paid and being set up; contact support to cancel it."), code="paid")
        order_end(order, status=Status.CANCELLED, action="cancelled", source=event_source_for(actor), actor=actor)
    elif order.status in RENEWABLE:
        if immediately or order.status != Status.ACTIVE:
            order_end(order, status=Status.CANCELLED, action="cancelled", source=event_source_for(actor), actor=actor)
        else:
            order.cancel_at_period_end = True
            order.save(update_fields=["cancel_at_period_end"])
            _cancel_open_invoices(order, reason="cancel at period end")
            event_record(order=order, action="cancel_scheduled", source=event_source_for(actor), actor=actor,
                         details={"at": order.expires_at.isoformat()})
    else:
        raise ValidationError(_("This service has already ended."), code="ended")
    return order


@transaction.atomic
def order_cancel_undo(*, order: Order, actor: User) -> Order:
    order = order_lock(order)
    if not order.cancel_at_period_end or order.status not in RENEWABLE:
        raise ValidationError(_("No cancellation is scheduled for this service."), code="not_scheduled")
    order.cancel_at_period_end = False
    order.save(update_fields=["cancel_at_period_end"])
    event_record(order=order, action="cancel_withdrawn", source=event_source_for(actor), actor=actor)
    return order
