"""Changing plan: an upgrade invoiced prorated and applied when paid (billing's invoice-paid hook), a
downgrade scheduled for the next renewal, and re-pricing the renewals already issued."""
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.models import User
from billing.models import Invoice
from billing.money import quantize
from billing.services.invoices import LineInput, invoice_cancel, invoice_issue, invoice_pay_from_balance
from notifications.kinds import Kind

from .. import pricing, provisioning
from ..models import Order, OrderRenewal, Plan, PlanChange
from .common import Source, Status, event_record, event_source_for, order_label, order_lock, order_notify
from .renewing import RENEWABLE, RenewResult, order_renew

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanChangeQuote:
    order: Order
    plan: Plan
    new_price: Decimal
    proration: pricing.Proration | None  # None for a downgrade

    @property
    def is_upgrade(self) -> bool:
        return self.new_price > self.order.price


def plan_change_candidates(order: Order):
    return (Plan.objects.filter(product_type_id=order.plan.product_type_id, is_active=True)
            .exclude(pk=order.plan_id).prefetch_related("prices").order_by("sort_order", "pk"))


def plan_change_quote(*, order: Order, plan: Plan, now: datetime | None = None) -> PlanChangeQuote:
    if order.status != Status.ACTIVE:
        raise ValidationError(_("The plan of an active service can be changed."), code="status")
    if plan.pk == order.plan_id or plan.product_type_id != order.plan.product_type_id or not plan.is_active:
        raise ValidationError(_("Choose another plan of the same product."), code="plan")
    new_price = pricing.plan_price(plan=plan, period_months=order.period_months, currency=order.currency).amount
    if new_price <= order.price:
        return PlanChangeQuote(order=order, plan=plan, new_price=new_price, proration=None)
    proration = pricing.order_proration(order=order, new_price=new_price, now=now)
    if proration.remaining_days == 0:
        raise ValidationError(_("The current period ends today; renew first, then upgrade."), code="period_end")
    if not plan.in_stock:
        raise ValidationError(_("This plan is out of stock."), code="out_of_stock")
    return PlanChangeQuote(order=order, plan=plan, new_price=new_price, proration=proration)


@dataclass(frozen=True)
class PlanChangeResult:
    scheduled: bool
    change: PlanChange | None = None
    invoice: Invoice | None = None
    paid: bool = False


@transaction.atomic
def order_change_plan(*, order: Order, plan: Plan, actor: User | None, expected_amount: Decimal | None = None) -> PlanChangeResult:
    """Upgrade: invoice the prorated difference and apply it when paid (from the balance at once if it
    covers it). Downgrade: scheduled for the next renewal. `expected_amount` is the amount the
    customer confirmed; if the quote moved since (a day passed), nothing happens."""
    order = order_lock(order)
    quote = plan_change_quote(order=order, plan=plan)
    if not quote.is_upgrade:
        order.scheduled_plan = plan
        order.save(update_fields=["scheduled_plan"])
        event_record(order=order, action="downgrade_scheduled", source=event_source_for(actor), actor=actor,
                     details={"from": order.plan.name, "to": plan.name, "at": order.expires_at.isoformat()})
        order_renewals_reprice(order=order, actor=actor)  # an issued renewal would still ask the old price
        return PlanChangeResult(scheduled=True)
    proration = quote.proration
    if expected_amount is not None and expected_amount != proration.amount:
        raise ValidationError(_("The price changed since you opened this page; check the new amount."), code="stale_quote")
    for pending in PlanChange.objects.filter(order=order, status=PlanChange.Status.PENDING):
        if pending.invoice_id:
            invoice_cancel(invoice=Invoice.objects.get(pk=pending.invoice_id), reason="replaced by a new plan change")
        pending.status = PlanChange.Status.CANCELLED
        pending.save(update_fields=["status"])
    change = PlanChange.objects.create(order=order, from_plan=order.plan, to_plan=plan, period=order.current_period,
                                       new_price=quote.new_price, amount=proration.amount, currency=order.currency)
    with translation.override(order.customer.language):
        description = _("Upgrade of order #%(id)s from %(old)s to %(new)s: %(days)s of %(total)s days") % {
            "id": order.pk, "old": order.plan.name, "new": plan.name, "days": proration.remaining_days,
            "total": proration.period_days}
    invoice = invoice_issue(customer=order.customer, kind=Invoice.Kind.PLAN_CHANGE, currency=order.currency,
                            lines=[LineInput(description=description, quantity=1, unit_price=proration.amount,
                                             reference=f"{order.reference}:upgrade:{change.pk}")],
                            idempotency_key=f"order:{order.pk}:upgrade:{change.pk}",
                            reference=f"{order.reference}:upgrade:{change.pk}")
    change.invoice_id = invoice.pk
    change.save(update_fields=["invoice_id"])
    event_record(order=order, action="upgrade_invoiced", source=event_source_for(actor), actor=actor,
                 details={"to": plan.name, "amount": str(proration.amount), "invoice": invoice.number})
    paid = invoice_pay_from_balance(invoice=invoice, actor=actor)
    change.refresh_from_db()
    return PlanChangeResult(scheduled=False, change=change, invoice=invoice, paid=paid)


def on_plan_change_invoice_paid(invoice: Invoice) -> None:
    """billing hook (kind PLAN_CHANGE): switch the plan. A quote for an earlier period is applied
    anyway (the customer paid for the upgrade) and noted for staff."""
    change = PlanChange.objects.select_for_update().filter(invoice_id=invoice.pk).first()
    if change is None or change.status != PlanChange.Status.PENDING:
        return
    order = Order.objects.select_for_update(of=("self",)).select_related("plan", "customer").get(pk=change.order_id)
    change.status = PlanChange.Status.APPLIED
    change.save(update_fields=["status"])
    if order.status not in RENEWABLE:
        event_record(order=order, action="upgrade_paid_after_end", source=Source.PAYMENT, details={"change": change.pk})
        return
    old_plan = order.plan
    order.plan = change.to_plan
    order.price = change.new_price
    order.scheduled_plan = None
    order.save(update_fields=["plan", "price", "scheduled_plan"])
    event_record(order=order, action="plan_changed", source=Source.PAYMENT,
                 details={"from": old_plan.name, "to": change.to_plan.name, "amount": str(change.amount),
                          "stale_period": change.period != order.current_period})
    provisioning.on_plan_changed(order, old_plan=old_plan)
    order_notify(order=order, kind=Kind.PLAN_CHANGED, dedupe_key=f"order:{order.pk}:upgrade:{change.pk}",
            context={"service": order_label(order, plan=old_plan), "old_plan": old_plan.name,
                     "new_plan": change.to_plan.name})
    _stale_renewals_withdraw(order)


def _renewal_is_stale(order: Order, renewal: OrderRenewal) -> bool:
    """A pending renewal priced for another plan or price than the order's next renewal now costs."""
    price = pricing.renewal_price(order)
    return (renewal.plan_id != pricing.renewal_plan(order).pk
            or renewal.amount != quantize(price * renewal.periods, order.currency))


def _stale_renewals_withdraw(order: Order) -> None:
    """The plan just switched inside a paying transaction (the order, the upgrade invoice and the
    ledger accounts are locked): a pending renewal still asks the old price. One nothing was applied
    to is cancelled here (only its invoice row is locked, which every other path locks after the order
    we hold), so it can no longer be paid at the old price; re-issuing needs the invoice counter and
    returning applied money needs accounts, both before invoices in the lock order, so that is done
    after commit by `order_renewals_reprice`. If that never runs, the renewal job issues the period anew."""
    stale = [renewal for renewal in OrderRenewal.objects.select_for_update().filter(order=order, status=OrderRenewal.Status.PENDING)
             if _renewal_is_stale(order, renewal)]
    if not stale:
        return
    for renewal in stale:
        invoice = Invoice.objects.filter(pk=renewal.invoice_id).first() if renewal.invoice_id else None
        if invoice is not None and invoice.is_open and invoice.amount_paid == 0:
            invoice_cancel(invoice=invoice, reason="plan changed: renewal re-issued at the new price")
        if invoice is None or invoice.status == Invoice.Status.CANCELLED:
            event_record(order=order, action="renewal_withdrawn", source=Source.SYSTEM,
                         details={"period": renewal.period, "amount": str(renewal.amount),
                                  "invoice": invoice.number if invoice else ""})
            renewal.delete()
    periods = {renewal.period: renewal.periods for renewal in stale}
    order_id = order.pk
    transaction.on_commit(lambda: _reprice_after_commit(order_id, periods))


def _reprice_after_commit(order_id: int, periods: dict[int, int]) -> None:
    try:
        order_renewals_reprice(order=Order.objects.get(pk=order_id), withdrawn_periods=periods)
    except Exception:  # the payment is committed; the renewal job issues the period when it is due
        logger.exception("Re-issuing the renewals of order %s at the new price failed", order_id)


@transaction.atomic
def order_renewals_reprice(*, order: Order, actor: User | None = None,
                           withdrawn_periods: dict[int, int] | None = None) -> list[RenewResult]:
    """Re-issue the order's pending renewals at what its next renewal now costs (after an upgrade, or
    when a downgrade is scheduled or withdrawn): a stale renewal's invoice is cancelled (money applied
    to it returns to the balance) and a new one issued for the same periods, paid from the balance if
    it covers it. `withdrawn_periods` ({period: periods}) are renewals the paying transaction already
    cancelled; they are issued again if still due."""
    order = order_lock(order)
    if order.status not in RENEWABLE or order.cancel_at_period_end:
        return []
    wanted = dict(withdrawn_periods or {})
    for renewal in OrderRenewal.objects.filter(order=order, status=OrderRenewal.Status.PENDING).order_by("period"):
        if _renewal_is_stale(order, renewal):
            wanted[renewal.period] = renewal.periods
    results = []
    next_period = order.current_period + 1
    if next_period in wanted:
        # `order_renew` replaces a pending renewal of the period whose amount differs (cancelling its invoice).
        result = order_renew(order=order, periods=wanted[next_period], actor=actor)
        event_record(order=order, action="renewal_repriced", source=event_source_for(actor), actor=actor,
                     details={"period": next_period, "amount": str(result.renewal.amount), "invoice": result.invoice.number})
        results.append(result)
    # Older or later pending periods cannot be renewed as such any more: drop them (nothing charged).
    for renewal in OrderRenewal.objects.filter(order=order, status=OrderRenewal.Status.PENDING).exclude(period=next_period):
        if _renewal_is_stale(order, renewal):
            invoice = Invoice.objects.filter(pk=renewal.invoice_id).first() if renewal.invoice_id else None
            if invoice is not None and invoice.is_open:
                invoice_cancel(invoice=invoice, reason="plan changed")
            renewal.delete()
    return results


@transaction.atomic
def order_cancel_scheduled_change(*, order: Order, actor: User) -> Order:
    order = order_lock(order)
    if order.scheduled_plan_id is None:
        raise ValidationError(_("No plan change is scheduled."), code="not_scheduled")
    order.scheduled_plan = None
    order.save(update_fields=["scheduled_plan"])
    event_record(order=order, action="downgrade_withdrawn", source=event_source_for(actor), actor=actor)
    order_renewals_reprice(order=order, actor=actor)
    return order
