"""Writes for orders: placing, paying (via billing's invoice-paid hook), renewing, cancelling,
changing plan, the lifecycle, and staff actions. Every function runs under transaction.atomic and
records an OrderEvent naming who or what caused the change.

Money never moves here: orders issue invoices through billing and ask billing to pay them from the
balance; whatever pays an invoice (balance, gateway, staff) ends in one of the `on_*_invoice_paid`
handlers registered in OrdersConfig.ready().
"""
import functools
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import Customer, User
from billing.models import Invoice
from billing.money import format_money, quantize
from billing.services.invoices import LineInput, invoice_cancel, invoice_issue, invoice_pay_from_balance

from . import pricing, promo, provisioning
from .models import Order, OrderEvent, OrderRenewal, Plan, PlanChange, PromoCode

logger = logging.getLogger(__name__)

Status = Order.Status
Source = OrderEvent.Source
RENEWABLE = (Status.ACTIVE, Status.EXPIRED, Status.SUSPENDED)
MAX_RENEW_PERIODS = 12


# --- helpers ---------------------------------------------------------------------------------------

def _source_for(actor: User | None) -> str:
    if actor is None:
        return Source.SYSTEM
    return Source.STAFF if actor.is_staff and actor.customer_id is None else Source.CUSTOMER


def event_record(*, order: Order, action: str, source: str, actor: User | None = None, from_status: str = "",
                 to_status: str = "", details: dict | None = None) -> OrderEvent:
    return OrderEvent.objects.create(
        order=order, action=action, source=source, actor=actor if actor is not None and actor.pk else None,
        from_status=from_status, to_status=to_status or (order.status if from_status else ""), details=details or {},
    )


def _notify(*, order: Order, kind: str, context: dict, dedupe_key: str | None, link: str = "") -> None:
    from notifications.services import notify

    notify(customer=order.customer, kind=kind, context={"service": order_label(order), **context},
           link=link or f"/orders/{order.pk}/", dedupe_key=dedupe_key)


def order_label(order: Order, *, plan: Plan | None = None) -> str:
    """"#4 VPS Standard (203.0.113.7)"; `plan` names it by another plan (the one before a plan change)."""
    label = f"#{order.pk} {(plan or order.plan).name}"
    return f"{label} ({order.ip})" if order.ip else label


def _money(amount: Decimal, currency: str, customer: Customer) -> str:
    return _money_in(amount, currency, customer.language)


def _date(moment: datetime | None, customer: Customer) -> str:
    if moment is None:
        return ""
    return _date_in(timezone.localtime(moment).date(), customer.language)


# Memoised: batch jobs format the same few amounts and dates thousands of times.
@functools.lru_cache(maxsize=4096)
def _money_in(amount: Decimal, currency: str, language: str) -> str:
    return format_money(amount, currency, locale=language)


@functools.lru_cache(maxsize=4096)
def _date_in(day: date, language: str) -> str:
    from django.utils.formats import date_format

    with translation.override(language):
        return date_format(day, "DATE_FORMAT")


def _lock(order: Order) -> Order:
    """Re-read the order under a row lock (the caller's copy may be stale). The row is locked alone
    first: a FOR UPDATE over a join re-checks the join after waiting, and a concurrent plan switch
    would make PostgreSQL drop the row (DoesNotExist) instead of returning it."""
    list(Order.objects.select_for_update().filter(pk=order.pk).values_list("pk", flat=True))
    return Order.objects.select_related("plan__product_type", "customer").get(pk=order.pk)


def _period_description(order: Order, plan: Plan, months: int, start: datetime | None = None,
                        end: datetime | None = None) -> str:
    with translation.override(order.customer.language):
        if start and end:
            return _("%(plan)s, order #%(id)s: %(start)s – %(end)s") % {
                "plan": plan.name, "id": order.pk, "start": _date(start, order.customer), "end": _date(end, order.customer)}
        return _("%(plan)s, order #%(id)s: %(months)s month(s)") % {"plan": plan.name, "id": order.pk, "months": months}


def effective_auto_renew(order: Order) -> bool:
    return order.customer.auto_renew_default if order.auto_renew is None else order.auto_renew


# --- placing an order ------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrderQuote:
    plan: Plan
    period_months: int
    price: pricing.Price
    setup_fee: pricing.Price
    promo: PromoCode | None = None
    discount: Decimal = Decimal("0")

    @property
    def subtotal(self) -> Decimal:
        return self.price.amount + self.setup_fee.amount - self.discount

    @property
    def currency(self) -> str:
        return self.price.currency


def order_quote(*, customer: Customer, plan: Plan, period_months: int, promo_code: str = "") -> OrderQuote:
    """What an order of `plan` costs in the customer's account currency (the currency it is charged in),
    less the discount of `promo_code` (a ValidationError when the code cannot be used)."""
    if not plan.is_active or not plan.product_type.is_active:
        raise ValidationError(_("This plan is not available for order."), code="unavailable")
    if not plan.in_stock:
        raise ValidationError(_("This plan is out of stock."), code="out_of_stock")
    currency = customer.currency
    price = pricing.plan_price(plan=plan, period_months=period_months, currency=currency)
    setup_fee = pricing.setup_fee(plan=plan, currency=currency)
    code, discount = None, Decimal("0")
    if promo_code.strip():
        code = promo.promo_find(code=promo_code, customer=customer, plan=plan, currency=currency)
        discount = promo.promo_discount(code, period_price=price.amount, setup_fee=setup_fee.amount, currency=currency)
    return OrderQuote(plan=plan, period_months=period_months, price=price, setup_fee=setup_fee, promo=code, discount=discount)


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    invoice: Invoice
    paid: bool


@transaction.atomic
def order_place(*, customer: Customer, actor: User | None, plan: Plan, period_months: int, options: dict,
                idempotency_key: str, promo_code: str = "") -> PlacedOrder:
    """Create a pending order with its invoice and pay it from the balance if the balance covers it.

    `idempotency_key` comes from the order form: a double-click or retry returns the first order.
    A `promo_code` is counted (`promo.promo_redeem`, under its row lock) and becomes a discount line.
    """
    # FOR NO KEY UPDATE of the plan row only: it serialises the stock count, yet does not block the
    # foreign-key checks (FOR KEY SHARE) that other transactions run at COMMIT on rows naming this
    # plan or its product type - a plain FOR UPDATE deadlocked with renewals under load (bench/load.py).
    plan = Plan.objects.select_for_update(no_key=True, of=("self",)).select_related("product_type").get(pk=plan.pk)
    # After the plan lock, so a concurrent twin (double click) that committed meanwhile is found too.
    existing = Order.objects.filter(idempotency_key=idempotency_key, customer=customer).first()
    if existing is not None:
        invoice = Invoice.objects.get(pk=existing.invoice_id)
        return PlacedOrder(order=existing, invoice=invoice, paid=invoice.status == Invoice.Status.PAID)
    quote = order_quote(customer=customer, plan=plan, period_months=period_months, promo_code=promo_code)
    if plan.stock is not None:
        Plan.objects.filter(pk=plan.pk).update(stock=F("stock") - 1)
    order = Order(
        customer=customer, plan=plan, period_months=period_months, price=quote.price.amount,
        currency=quote.currency, options=options, idempotency_key=idempotency_key,
    )
    order.full_clean(exclude=["customer", "plan"])
    try:
        with transaction.atomic():
            order.save()
    except IntegrityError:
        # A concurrent twin of the same submission won the unique key; this one changes nothing.
        raise ValidationError(_("This order was already submitted."), code="duplicate")
    lines = [LineInput(description=_period_description(order, plan, period_months), quantity=1, unit_price=quote.price.amount,
                       reference=order.reference)]
    if quote.setup_fee.amount:
        with translation.override(customer.language):
            setup_text = _("Setup fee: %(plan)s") % {"plan": plan.name}
        lines.append(LineInput(description=setup_text, quantity=1, unit_price=quote.setup_fee.amount,
                               reference=order.reference))
    if quote.promo is not None:
        promo.promo_redeem(promo=quote.promo, customer=customer, order=order, plan=plan)
        if quote.discount:
            lines.append(promo.discount_line(quote.promo, amount=quote.discount, language=customer.language,
                                             reference=order.reference))
    invoice = invoice_issue(customer=customer, kind=Invoice.Kind.ORDER, lines=lines, currency=quote.currency,
                            idempotency_key=f"order:{order.pk}", reference=order.reference)
    order.invoice_id = invoice.pk
    order.save(update_fields=["invoice_id"])
    details = {"plan": plan.name, "period_months": period_months, "price": str(quote.price.amount), "currency": quote.currency}
    if quote.price.is_converted:
        details.update(converted_from=quote.price.converted_from, rate=str(quote.price.rate))
    if quote.promo is not None:
        details.update(promo_code=quote.promo.code, discount=str(quote.discount))
    event_record(order=order, action="placed", source=_source_for(actor), actor=actor, details=details)
    paid = invoice_pay_from_balance(invoice=invoice, actor=actor)
    order.refresh_from_db()
    invoice.refresh_from_db()
    return PlacedOrder(order=order, invoice=invoice, paid=paid)


def _order_from_reference(invoice: Invoice) -> Order | None:
    parts = (invoice.reference or "").split(":")
    if len(parts) < 2 or parts[0] != "order" or not parts[1].isdigit():
        return None
    return Order.objects.filter(pk=int(parts[1]), customer_id=invoice.customer_id).first()


def lock_order_of_invoice(invoice: Invoice, skip_locked: bool = False) -> bool:
    """billing hook, called before billing locks an order's invoice: lock the order first, the order
    every orders path takes (order -> invoice -> accounts). False if `skip_locked` and it is busy."""
    parts = (invoice.reference or "").split(":")
    if len(parts) < 2 or parts[0] != "order" or not parts[1].isdigit():
        return True
    order_id = int(parts[1])
    locked = list(Order.objects.select_for_update(of=("self",), skip_locked=skip_locked)
                  .filter(pk=order_id, customer_id=invoice.customer_id).values_list("pk", flat=True))
    if locked or not skip_locked:
        return True
    return not Order.objects.filter(pk=order_id, customer_id=invoice.customer_id).exists()  # busy, or no such order


def on_order_invoice_paid(invoice: Invoice) -> None:
    """billing hook (kind ORDER): the first period is paid → provision and activate."""
    order = _order_from_reference(invoice)
    if order is None:
        return
    order = _lock(order)
    if order.paid_at is not None:
        return
    order.paid_at = timezone.now()
    if order.status == Status.CANCELLED:
        # Paid after it was cancelled (e.g. a bank transfer arriving late): staff decide on a refund.
        order.save(update_fields=["paid_at"])
        event_record(order=order, action="paid_after_cancel", source=Source.PAYMENT, details={"invoice": invoice.number})
        return
    order.save(update_fields=["paid_at"])
    event_record(order=order, action="paid", source=Source.PAYMENT, details={"invoice": invoice.number})
    _provision(order)


def _provision(order: Order) -> None:
    result = provisioning.provision(order)
    if result.done:
        _activate(order, ip=result.ip, source=Source.SYSTEM)
    elif result.queued:
        order.provisioning = Order.Provisioning.IN_PROGRESS
        order.provisioning_note = ""
        order.save(update_fields=["provisioning", "provisioning_note"])
    else:
        order.provisioning = Order.Provisioning.WAITING_STAFF
        order.provisioning_note = result.note
        order.save(update_fields=["provisioning", "provisioning_note"])
        event_record(order=order, action="waiting_staff", source=Source.SYSTEM, details={"note": result.note})


def order_provisioned(*, order: Order, ip: str) -> None:
    """A provisioning job created the server (caller holds the order's lock): the first period starts
    now. An order cancelled or terminated meanwhile stays ended (its terminate job follows)."""
    if order.status == Status.PENDING and order.paid_at is not None and order.provisioning != Order.Provisioning.DONE:
        _activate(order, ip=ip, source=Source.SYSTEM)


def order_provisioning_failed(*, order: Order, error: str, final: bool, retrying: bool = False) -> None:
    """A create job failed (caller holds the order's lock). The paid order stays paid and pending; the
    note tells staff why, the order page tells the customer it is delayed (or failed and with staff)."""
    if order.status != Status.PENDING:
        return
    order.provisioning = Order.Provisioning.FAILED if final else Order.Provisioning.IN_PROGRESS
    order.provisioning_note = "" if retrying else error[:255]
    order.save(update_fields=["provisioning", "provisioning_note"])
    if final:
        event_record(order=order, action="provisioning_failed", source=Source.SYSTEM)


def _activate(order: Order, *, ip: str, source: str, actor: User | None = None) -> None:
    now = timezone.now()
    previous = order.status
    order.ip = ip
    order.status = Status.ACTIVE
    order.provisioning = Order.Provisioning.DONE
    order.provisioning_note = ""
    order.activated_at = now
    order.anchor_at = now
    order.anchor_months = order.period_months
    order.period_started_at = now
    order.expires_at = pricing.add_months(now, order.period_months, pricing.order_zone(order))
    order.current_period = 1
    order.save()
    event_record(order=order, action="activated", source=source, actor=actor, from_status=previous,
                 details={"ip": ip})
    _notify(order=order, kind="service_activated", context={"ip": ip}, dedupe_key=f"order:{order.pk}:activated")


@transaction.atomic
def order_provision_retry(*, order: Order, actor: User) -> bool:
    """Staff: try the provisioner again (e.g. after adding addresses to the pool)."""
    order = _lock(order)
    if order.paid_at is None or order.status != Status.PENDING or order.provisioning not in (
            Order.Provisioning.WAITING_STAFF, Order.Provisioning.FAILED):
        raise ValidationError(_("Only paid orders waiting for staff can be provisioned."))
    result = provisioning.provision(order, actor=actor)
    if result.done:
        _activate(order, ip=result.ip, source=Source.STAFF, actor=actor)
    elif result.queued:
        order.provisioning, order.provisioning_note = Order.Provisioning.IN_PROGRESS, ""
        order.save(update_fields=["provisioning", "provisioning_note"])
    _audit(order=order, actor=actor, action="order_provision_retry", details={"done": result.done})
    return result.done


@transaction.atomic
def order_complete_manually(*, order: Order, ip: str, actor: User) -> Order:
    """Staff: the server is set up by hand; record its address and start the first period."""
    order = _lock(order)
    if order.paid_at is None or order.status != Status.PENDING:
        raise ValidationError(_("Only paid pending orders can be completed."))
    if Order.objects.filter(ip=ip, status__in=[Status.ACTIVE, Status.EXPIRED, Status.SUSPENDED]).exclude(pk=order.pk).exists():
        raise ValidationError({"ip": _("This IP address is already used by another active service.")})
    _activate(order, ip=ip, source=Source.STAFF, actor=actor)
    _audit(order=order, actor=actor, action="order_completed", details={"ip": ip})
    return order


# --- renewing --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RenewResult:
    renewal: OrderRenewal
    invoice: Invoice
    paid: bool


def renewal_plan(order: Order) -> Plan:
    return order.scheduled_plan or order.plan


def renewal_price(order: Order) -> Decimal:
    """Price of one period at the next renewal: a scheduled downgrade's price, else the order's."""
    if order.scheduled_plan_id is None:
        return order.price
    return pricing.plan_price(plan=order.scheduled_plan, period_months=order.period_months, currency=order.currency).amount


def renewal_invoice_issue(*, order: Order, renewal: OrderRenewal) -> Invoice:
    plan = renewal.plan
    description = _period_description(order, plan, renewal.periods * order.period_months)
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
    order = _lock(order)
    if order.status not in RENEWABLE:
        raise ValidationError(_("Only active, expired or suspended services can be renewed."), code="status")
    period = order.current_period + 1
    if expected_period is not None and expected_period != period:
        raise ValidationError(_("This service was renewed meanwhile; check its new expiry date before renewing again."),
                              code="renewed")
    price = renewal_price(order)
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
                                              currency=order.currency, plan=renewal_plan(order))
        invoice = renewal_invoice_issue(order=order, renewal=renewal)
        renewal.invoice_id = invoice.pk
        renewal.save(update_fields=["invoice_id"])
        event_record(order=order, action="renewal_invoiced", source=_source_for(actor), actor=actor,
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
    _notify(order=order, kind="service_renewed", dedupe_key=f"order:{order.pk}:period:{renewal.period}:renewed",
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
    """`service_renewed` notification context (without "service", which `_notify` adds first)."""
    customer = order.customer
    return {"expires_at": _date(order.expires_at, customer), "amount": _money(renewal.amount, renewal.currency, customer)}


def plan_change_applied(*, order: Order, renewal: OrderRenewal, old_plan: Plan, new_plan: Plan) -> None:
    """A renewal switched the order to its scheduled (downgrade) plan: record and tell the customer."""
    event_record(order=order, action="plan_changed", source=Source.SYSTEM,
                 details={"from": old_plan.name, "to": new_plan.name, "scheduled": True})
    provisioning.on_plan_changed(order, old_plan=old_plan)
    _notify(order=order, kind="plan_changed", dedupe_key=f"order:{order.pk}:period:{renewal.period}:downgrade",
            context={"service": order_label(order, plan=old_plan), "old_plan": old_plan.name, "new_plan": new_plan.name})


def renewal_failed_notify(*, order: Order, renewal: OrderRenewal) -> None:
    """Once per period: the automatic renewal could not be paid; link to the invoice."""
    customer = order.customer
    with translation.override(customer.language):
        reason = _("Your balance does not cover %(amount)s.") % {"amount": _money(renewal.amount, renewal.currency, customer)}
    _notify(order=order, kind="renewal_failed", dedupe_key=f"order:{order.pk}:period:{renewal.period}:renewal_failed",
            context={"expires_at": _date(order.expires_at, customer), "reason": reason},
            link=f"/billing/invoices/{renewal.invoice_id}/" if renewal.invoice_id else "")


# --- auto-renewal toggle, cancellation ------------------------------------------------------------

@transaction.atomic
def order_set_auto_renew(*, order: Order, auto_renew: bool | None, actor: User) -> Order:
    order = _lock(order)
    if order.status in (Status.TERMINATED, Status.CANCELLED):
        raise ValidationError(_("This service has ended."), code="ended")
    order.auto_renew = auto_renew
    order.save(update_fields=["auto_renew"])
    event_record(order=order, action="auto_renew_changed", source=_source_for(actor), actor=actor,
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


def _end(order: Order, *, status: str, action: str, source: str, actor: User | None = None, reason: str = "") -> None:
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
    order = _lock(order)
    if order.status == Status.PENDING:
        if order.paid_at is not None:
            raise ValidationError(_("This order is paid and being set up; contact support to cancel it."), code="paid")
        _end(order, status=Status.CANCELLED, action="cancelled", source=_source_for(actor), actor=actor)
    elif order.status in RENEWABLE:
        if immediately or order.status != Status.ACTIVE:
            _end(order, status=Status.CANCELLED, action="cancelled", source=_source_for(actor), actor=actor)
        else:
            order.cancel_at_period_end = True
            order.save(update_fields=["cancel_at_period_end"])
            _cancel_open_invoices(order, reason="cancel at period end")
            event_record(order=order, action="cancel_scheduled", source=_source_for(actor), actor=actor,
                         details={"at": order.expires_at.isoformat()})
    else:
        raise ValidationError(_("This service has already ended."), code="ended")
    return order


@transaction.atomic
def order_cancel_undo(*, order: Order, actor: User) -> Order:
    order = _lock(order)
    if not order.cancel_at_period_end or order.status not in RENEWABLE:
        raise ValidationError(_("No cancellation is scheduled for this service."), code="not_scheduled")
    order.cancel_at_period_end = False
    order.save(update_fields=["cancel_at_period_end"])
    event_record(order=order, action="cancel_withdrawn", source=_source_for(actor), actor=actor)
    return order


# --- changing plan ---------------------------------------------------------------------------------

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
    order = _lock(order)
    quote = plan_change_quote(order=order, plan=plan)
    if not quote.is_upgrade:
        order.scheduled_plan = plan
        order.save(update_fields=["scheduled_plan"])
        event_record(order=order, action="downgrade_scheduled", source=_source_for(actor), actor=actor,
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
    event_record(order=order, action="upgrade_invoiced", source=_source_for(actor), actor=actor,
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
    _notify(order=order, kind="plan_changed", dedupe_key=f"order:{order.pk}:upgrade:{change.pk}",
            context={"service": order_label(order, plan=old_plan), "old_plan": old_plan.name,
                     "new_plan": change.to_plan.name})
    _stale_renewals_withdraw(order)


def _renewal_is_stale(order: Order, renewal: OrderRenewal) -> bool:
    """A pending renewal priced for another plan or price than the order's next renewal now costs."""
    price = renewal_price(order)
    return (renewal.plan_id != renewal_plan(order).pk
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
    order = _lock(order)
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
        event_record(order=order, action="renewal_repriced", source=_source_for(actor), actor=actor,
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
    order = _lock(order)
    if order.scheduled_plan_id is None:
        raise ValidationError(_("No plan change is scheduled."), code="not_scheduled")
    order.scheduled_plan = None
    order.save(update_fields=["scheduled_plan"])
    event_record(order=order, action="downgrade_withdrawn", source=_source_for(actor), actor=actor)
    order_renewals_reprice(order=order, actor=actor)
    return order


# --- lifecycle -------------------------------------------------------------------------------------

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


def _ids(queryset, limit: int) -> list[int]:
    return list(queryset.order_by("pk").values_list("pk", flat=True)[:limit])


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
        _end(order, status=Status.CANCELLED, action="cancelled_at_period_end", source=Source.SYSTEM)

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
        _notify(order=order, kind="service_suspended",
                context={"reason": reason, "suspension_reason": Order.SuspensionReason.NON_PAYMENT.value},
                dedupe_key=f"order:{order.pk}:period:{order.current_period}:suspended")

    summary.suspended = _each_locked(Order.objects.filter(status=Status.EXPIRED, expires_at__lte=now - grace), suspend,
                                     chunk_size=chunk_size)

    def terminate(order: Order) -> None:
        _end(order, status=Status.TERMINATED, action="terminated", source=Source.SYSTEM, reason="unpaid")
        with translation.override(order.customer.language):
            reason = _("The service stayed unpaid and suspended.")
        _notify(order=order, kind="service_terminated", context={"reason": reason}, dedupe_key=f"order:{order.pk}:terminated")

    summary.terminated = _each_locked(Order.objects.filter(status=Status.SUSPENDED, expires_at__lte=now - terminate_after),
                                      terminate, chunk_size=chunk_size)

    def cancel_unpaid(order: Order) -> None:
        _end(order, status=Status.CANCELLED, action="cancelled_unpaid", source=Source.SYSTEM,
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
            _notify(order=order, kind="service_expiring", dedupe_key=f"order:{order.pk}:period:{order.current_period}:expiring:{days}d",
                    context={"expires_at": _date(order.expires_at, customer), "days_left": str(days)})

        summary.expiry_notices += _each_locked(
            Order.objects.filter(status=Status.ACTIVE, cancel_at_period_end=False, expires_at__gt=floor,
                                 expires_at__lte=now + timedelta(days=days))
            .filter(Q(expiry_notice_days__isnull=True) | Q(expiry_notice_days__gt=days)),
            notice, chunk_size=chunk_size)
    from . import dunning  # it builds on this module

    summary.suspension_notices = dunning.suspension_notices_send(now=now)
    summary.termination_notices = dunning.termination_notices_send(now=now)
    return summary


# --- staff actions (admin) -------------------------------------------------------------------------

def _audit(*, order: Order, actor: User, action: str, details: dict | None = None) -> None:
    from accounts.services import activity_record

    activity_record(action=action, customer=order.customer, actor=actor, visible_to_customer=False,
                    details={"order": order.pk, **(details or {})})


@transaction.atomic
def order_suspend(*, order: Order, actor: User, reason: str = "") -> Order:
    """Staff: suspend (abuse, a dispute…). Only staff lift it: paying a renewal keeps it suspended. A
    service already suspended for non-payment becomes staff-suspended, so paying no longer lifts it."""
    order = _lock(order)
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
    _audit(order=order, actor=actor, action="order_suspend", details={"reason": reason})
    _notify(order=order, kind="service_suspended",
            context={"reason": reason, "suspension_reason": Order.SuspensionReason.STAFF.value},
            dedupe_key=f"order:{order.pk}:period:{order.current_period}:suspended:staff:{timezone.now():%Y%m%d%H%M%S}")
    return order


@transaction.atomic
def order_unsuspend(*, order: Order, actor: User) -> Order:
    order = _lock(order)
    if order.status != Status.SUSPENDED:
        raise ValidationError(_("Only suspended services can be unsuspended."))
    order.status = Status.ACTIVE if order.expires_at > timezone.now() else Status.EXPIRED
    order.suspension_reason = Order.SuspensionReason.NONE
    order.save(update_fields=["status", "suspension_reason"])
    event_record(order=order, action="unsuspended", source=Source.STAFF, actor=actor, from_status=Status.SUSPENDED)
    provisioning.on_unsuspended(order, actor=actor)
    _audit(order=order, actor=actor, action="order_unsuspend")
    return order


@transaction.atomic
def order_terminate(*, order: Order, actor: User, reason: str = "") -> Order:
    order = _lock(order)
    if order.status in (Status.TERMINATED, Status.CANCELLED):
        raise ValidationError(_("This service has already ended."))
    _end(order, status=Status.TERMINATED, action="terminated", source=Source.STAFF, actor=actor, reason=reason)
    _audit(order=order, actor=actor, action="order_terminate", details={"reason": reason})
    _notify(order=order, kind="service_terminated", context={"reason": reason}, dedupe_key=f"order:{order.pk}:terminated")
    return order


@transaction.atomic
def order_extend(*, order: Order, actor: User, days: int, reason: str = "") -> Order:
    """Staff: add free days (compensation); an expired order becomes active again if it now runs.

    The expiry moves by exactly `days` calendar days in the customer's zone, and the order is
    re-anchored on it (no months counted yet), so every later period is a whole month from the new
    expiry (docs/ARCHITECTURE.md, "Orders")."""
    if not 1 <= days <= 366:
        raise ValidationError(_("Extend by 1 to 366 days."))
    order = _lock(order)
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
    _audit(order=order, actor=actor, action="order_extend", details={"days": days, "reason": reason})
    return order
