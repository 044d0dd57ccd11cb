"""Renewing an order: its price, the renewal invoice, paying it (billing's invoice-paid hook) and the
renewal rule that extends the order (shared with the set-based job in `renewal_batch`)."""
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import User
from billing.models import Invoice
from billing.money import quantize
from billing.services.invoices import LineInput, invoice_cancel, invoice_issue, invoice_pay_from_balance
from notifications.kinds import Kind

from .. import pricing, promo, provisioning
from ..models import Order, OrderRenewal, Plan
from .common import (
    Source, Status, date_for_customer, event_record, event_source_for, money_for_customer, order_lock,
    order_label, order_notify, period_description,
)

RENEWABLE = (Status.ACTIVE, Status.EXPIRED, Status.SUSPENDED)
MAX_RENEW_PERIODS = 12


@dataclass(frozen=True)
class RenewResult:
    renewal: OrderRenewal
    invoice: Invoice
    paid: bool


def renewal_invoice_issue(*, order: Order, renewal: OrderRenewal) -> Invoice:
    plan = renewal.plan
    description = period_description(order, plan, renewal.periods * order.period_months)
    return invoice_issue(
        customer=order.customer, kind=Invoice.Kind.RENEWAL, currency=renewal.currency,
        lines=[LineInput(description=description, quantity=renewal.periods, unit_price=renewal.amount / renewal.periods,
                         reference=f"{order.reference}:period:{renewal.period}"),
               *promo.renewal_discount_lines(order=order, renewal=renewal)],
        idempotency_key=f"order:{order.pk}:renewal:{renewal.pk}", reference=f"{order.reference}:period:{renewal.period}",
    )


@transaction.atomic
def order_renew(*, order: Order, periods: int, actor: User | None, expected_period: int | None = None) -> RenewResult:
    """Renew for `periods` billing periods from the balance, or leave an invoice to pay.

    A pending renewal of the same period is replaced (its invoice cancelled) so the customer always
    has one current renewal invoice per period. `expected_period` is the period the customer's form
    offered: once it is paid, a second submit of that form (double click) is refused, not renewed again.
    """
    if not 1 <= periods <= MAX_RENEW_PERIODS:
        raise ValidationError(_("Choose between 1 and %(max)s periods.") % {"max": MAX_RENEW_PERIODS}, code="periods")
    order = order_lock(order)
    if order.status not in RENEWABLE:
        raise ValidationError(_("Only active, expired or suspended services can be renewed."), code="status")
    period = order.current_period + 1
    if expected_period is not None and expected_period != period:
        raise ValidationError(_("This service was renewed meanwhile; check its new expiry date before renewing again."),
                              code="renewed")
    price = pricing.renewal_price(order)
    amount = quantize(price * periods, order.currency)
    existing = OrderRenewal.objects.select_for_update().filter(order=order, period=period).first()
    if existing is not None:
        if existing.status == OrderRenewal.Status.PAID:  # cannot happen while current_period is in step
            raise ValidationError(_("This period is already renewed."), code="renewed")
        existing_invoice = Invoice.objects.filter(pk=existing.invoice_id).first() if existing.invoice_id else None
        if existing.periods == periods and existing.amount == amount and existing_invoice and existing_invoice.is_open:
            renewal = existing
        else:
            if existing_invoice is not None and existing_invoice.is_open:
                invoice_cancel(invoice=existing_invoice, reason="replaced by a new renewal")
            existing.delete()
            renewal = None
    else:
        renewal = None
    if renewal is None:
        renewal = OrderRenewal.objects.create(order=order, period=period, periods=periods, amount=amount,
                                              currency=order.currency, plan=pricing.renewal_plan(order))
        invoice = renewal_invoice_issue(order=order, renewal=renewal)
        renewal.invoice_id = invoice.pk
        renewal.save(update_fields=["invoice_id"])
        event_record(order=order, action="renewal_invoiced", source=event_source_for(actor), actor=actor,
                     details={"periods": periods, "amount": str(amount), "invoice": invoice.number})
    else:
        invoice = Invoice.objects.get(pk=renewal.invoice_id)
    paid = invoice.status == Invoice.Status.PAID or invoice_pay_from_balance(invoice=invoice, actor=actor)
    renewal.refresh_from_db()
    invoice.refresh_from_db()
    return RenewResult(renewal=renewal, invoice=invoice, paid=paid)


def on_renewal_invoice_paid(invoice: Invoice) -> None:
    """billing hook (kind RENEWAL): extend the order for the paid periods."""
    renewal = OrderRenewal.objects.select_for_update().filter(invoice_id=invoice.pk).first()
    if renewal is None or renewal.status != OrderRenewal.Status.PENDING:
        return
    renewal_apply(renewal=renewal, source=Source.PAYMENT)


def renewal_apply(*, renewal: OrderRenewal, source: str, now: datetime | None = None) -> None:
    """Extend the order by the renewal's months (see `renewal_extend`) and mark the renewal paid."""
    now = now or timezone.now()
    order = Order.objects.select_for_update(of=("self",)).select_related("plan", "customer", "scheduled_plan").get(pk=renewal.order_id)
    renewal.status = OrderRenewal.Status.PAID
    renewal.paid_at = now
    if order.status not in RENEWABLE:
        renewal.save(update_fields=["status", "paid_at"])
        event_record(order=order, action="renewal_paid_after_end", source=source,
                     details={"period": renewal.period, "amount": str(renewal.amount)})
        return
    previous, changed_plan = renewal_extend(order=order, renewal=renewal, now=now)
    order.save(update_fields=RENEWAL_ORDER_FIELDS)
    renewal.save(update_fields=["status", "paid_at", "starts_at", "ends_at"])
    event_record(order=order, action="renewed", source=source, from_status=previous, details=renewed_details(order, renewal))
    order_notify(order=order, kind=Kind.SERVICE_RENEWED, dedupe_key=f"order:{order.pk}:period:{renewal.period}:renewed",
            context=renewed_context(order, renewal))
    if changed_plan:
        plan_change_applied(order=order, renewal=renewal, old_plan=changed_plan[0], new_plan=changed_plan[1])


def renewal_starts_today(order: Order, now: datetime | None = None) -> bool:
    """Whether a renewal paid now starts a new period today (a suspended order whose paid period has
    ended) rather than at the current expiry (see `renewal_extend`)."""
    now = now or timezone.now()
    return order.expires_at is None or (order.status == Status.SUSPENDED and order.expires_at <= now)


RENEWAL_ORDER_FIELDS = ["anchor_at", "anchor_months", "period_started_at", "expires_at", "current_period", "status",
                        "suspension_reason", "expiry_notice_days", "plan", "price", "scheduled_plan"]


def renewal_extend(*, order: Order, renewal: OrderRenewal, now: datetime) -> tuple[str, tuple[Plan, Plan] | None]:
    """The renewal rule, in memory (callers save `RENEWAL_ORDER_FIELDS` and the renewal's dates):
    an active/expired order extends from its expiry date (early renewal loses nothing), a suspended
    one from now if its paid period has ended (else from its expiry too); a suspension for
    non-payment is lifted, a staff suspension never is; a scheduled downgrade paid for by this renewal switches the
    plan. Returns (previous status, (old plan, new plan) or None)."""
    months = renewal.periods * order.period_months
    previous = order.status
    # A suspended order whose paid period already ended starts again today (it was off meanwhile);
    # one still inside its paid period extends from its expiry like any other: renewing never
    # shortens what was paid.
    restart = renewal_starts_today(order, now)
    if restart:
        order.anchor_at, order.anchor_months = now, months
    else:
        order.anchor_months += months
    start = now if restart else order.expires_at
    if restart or order.period_started_at is None:
        order.period_started_at = start  # start of the paid span; an early renewal extends the span
    order.expires_at = pricing.add_months(order.anchor_at, order.anchor_months, pricing.order_zone(order))
    order.current_period = max(order.current_period, renewal.period + renewal.periods - 1)
    # Paying lifts a suspension for non-payment; a staff suspension stays until staff lift it.
    if not (order.status == Status.SUSPENDED and order.suspension_reason == Order.SuspensionReason.STAFF):
        order.status = Status.ACTIVE
        order.suspension_reason = Order.SuspensionReason.NONE
    order.expiry_notice_days = None
    if previous == Status.SUSPENDED:
        provisioning.on_unsuspended(order)
    changed_plan = None
    if order.scheduled_plan_id and renewal.plan_id == order.scheduled_plan_id:
        changed_plan = (order.plan, order.scheduled_plan)
        order.plan = order.scheduled_plan
        order.price = quantize(renewal.amount / renewal.periods, order.currency)
        order.scheduled_plan = None
    renewal.status, renewal.paid_at = OrderRenewal.Status.PAID, now
    renewal.starts_at, renewal.ends_at = start, order.expires_at
    return previous, changed_plan


def renewed_details(order: Order, renewal: OrderRenewal) -> dict:
    return {"period": renewal.period, "periods": renewal.periods, "amount": str(renewal.amount),
            "expires_at": order.expires_at.isoformat()}


def renewed_context(order: Order, renewal: OrderRenewal) -> dict:
    """`service_renewed` notification context (without "service", which `order_notify` adds first)."""
    customer = order.customer
    return {"expires_at": date_for_customer(order.expires_at, customer), "amount": money_for_customer(renewal.amount, renewal.currency, customer)}


def plan_change_applied(*, order: Order, renewal: OrderRenewal, old_plan: Plan, new_plan: Plan) -> None:
    """A renewal switched the order to its scheduled (downgrade) plan: record and tell the customer."""
    event_record(order=order, action="plan_changed", source=Source.SYSTEM,
                 details={"from": old_plan.name, "to": new_plan.name, "scheduled": True})
    provisioning.on_plan_changed(order, old_plan=old_plan)
    order_notify(order=order, kind=Kind.PLAN_CHANGED, dedupe_key=f"order:{order.pk}:period:{renewal.period}:downgrade",
            context={"service": order_label(order, plan=old_plan), "old_plan": old_plan.name, "new_plan": new_plan.name})


def renewal_failed_notify(*, order: Order, renewal: OrderRenewal) -> None:
    """Once per period: the automatic renewal could not be paid; link to the invoice."""
    customer = order.customer
    with translation.override(customer.language):
        reason = _("Your balance does not cover %(amount)s.") % {"amount": money_for_customer(renewal.amount, renewal.currency, customer)}
    order_notify(order=order, kind=Kind.RENEWAL_FAILED, dedupe_key=f"order:{order.pk}:period:{renewal.period}:renewal_failed",
            context={"expires_at": date_for_customer(order.expires_at, customer), "reason": reason},
            link=reverse("billing:invoice_detail", args=[renewal.invoice_id]) if renewal.invoice_id else "")
