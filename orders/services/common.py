"""Helpers the order services share: the event record, the staff audit, notifications, labels and
formatting, and the order row lock."""
import functools
from datetime import date, datetime
from decimal import Decimal

from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import Customer, User
from billing.money import format_money

from ..models import Order, OrderEvent, Plan

Status = Order.Status
Source = OrderEvent.Source


def event_source_for(actor: User | None) -> str:
    if actor is None:
        return Source.SYSTEM
    return Source.STAFF if actor.is_staff and actor.customer_id is None else Source.CUSTOMER


def event_record(*, order: Order, action: str, source: str, actor: User | None = None, from_status: str = "",
                 to_status: str = "", details: dict | None = None) -> OrderEvent:
    return OrderEvent.objects.create(
        order=order, action=action, source=source, actor=actor if actor is not None and actor.pk else None,
        from_status=from_status, to_status=to_status or (order.status if from_status else ""), details=details or {},
    )


def order_notify(*, order: Order, kind: str, context: dict, dedupe_key: str | None, link: str = "") -> None:
    from notifications.services import notify

    notify(customer=order.customer, kind=kind, context={"service": order_label(order), **context},
           link=link or reverse("orders:order_detail", args=[order.pk]), dedupe_key=dedupe_key)


def order_label(order: Order, *, plan: Plan | None = None) -> str:
    """"#4 VPS Standard (203.0.113.7)"; `plan` names it by another plan (the one before a plan change)."""
    label = f"#{order.pk} {(plan or order.plan).name}"
    return f"{label} ({order.ip})" if order.ip else label


def money_for_customer(amount: Decimal, currency: str, customer: Customer) -> str:
    return money_in_language(amount, currency, customer.language)


def date_for_customer(moment: datetime | None, customer: Customer) -> str:
    if moment is None:
        return ""
    return date_in_language(timezone.localtime(moment).date(), customer.language)


# Memoised: batch jobs format the same few amounts and dates thousands of times.
@functools.lru_cache(maxsize=4096)
def money_in_language(amount: Decimal, currency: str, language: str) -> str:
    return format_money(amount, currency, locale=language)


@functools.lru_cache(maxsize=4096)
def date_in_language(day: date, language: str) -> str:
    from django.utils.formats import date_format

    with translation.override(language):
        return date_format(day, "DATE_FORMAT")


def order_lock(order: Order) -> Order:
    """Re-read the order under a row lock (the caller's copy may be stale). The row is locked alone
    first: a FOR UPDATE over a join re-checks the join after waiting, and a concurrent plan switch
    would make PostgreSQL drop the row (DoesNotExist) instead of returning it."""
    list(Order.objects.select_for_update().filter(pk=order.pk).values_list("pk", flat=True))
    return Order.objects.select_related("plan__product_type", "customer").get(pk=order.pk)


def period_description(order: Order, plan: Plan, months: int, start: datetime | None = None,
                        end: datetime | None = None) -> str:
    with translation.override(order.customer.language):
        if start and end:
            return _("%(plan)s, order #%(id)s: %(start)s – %(end)s") % {
                "plan": plan.name, "id": order.pk, "start": date_for_customer(start, order.customer), "end": date_for_customer(end, order.customer)}
        return _("%(plan)s, order #%(id)s: %(months)s month(s)") % {"plan": plan.name, "id": order.pk, "months": months}


def staff_audit_record(*, order: Order, actor: User, action: str, details: dict | None = None) -> None:
    from accounts.services.activity import activity_record

    activity_record(action=action, customer=order.customer, actor=actor, visible_to_customer=False,
                    details={"order": order.pk, **(details or {})})
