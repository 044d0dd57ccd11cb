"""Placing an order: the quote, the order with its first invoice, payment (billing's invoice-paid hook),
provisioning and activation, and staff completing a stuck one."""
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import Customer, User
from billing.models import Invoice
from billing.services.invoices import LineInput, invoice_issue, invoice_pay_from_balance
from notifications.kinds import Kind

from .. import pricing, promo, provisioning
from ..models import Order, Plan, PromoCode
from .common import (
    Source, Status, event_record, event_source_for, order_lock, order_notify, period_description,
    staff_audit_record,
)


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
    lines = [LineInput(description=period_description(order, plan, period_months), quantity=1, unit_price=quote.price.amount,
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
    event_record(order=order, action="placed", source=event_source_for(actor), actor=actor, details=details)
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
    order = order_lock(order)
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
    order_notify(order=order, kind=Kind.SERVICE_ACTIVATED, context={"ip": ip}, dedupe_key=f"order:{order.pk}:activated")


@transaction.atomic
def order_provision_retry(*, order: Order, actor: User) -> bool:
    """Staff: try the provisioner again (e.g. after adding addresses to the pool)."""
    order = order_lock(order)
    if order.paid_at is None or order.status != Status.PENDING or order.provisioning not in (
            Order.Provisioning.WAITING_STAFF, Order.Provisioning.FAILED):
        raise ValidationError(_("Only paid orders waiting for staff can be provisioned."))
    result = provisioning.provision(order, actor=actor)
    if result.done:
        _activate(order, ip=result.ip, source=Source.STAFF, actor=actor)
    elif result.queued:
        order.provisioning, order.provisioning_note = Order.Provisioning.IN_PROGRESS, ""
        order.save(update_fields=["provisioning", "provisioning_note"])
    staff_audit_record(order=order, actor=actor, action="order_provision_retry", details={"done": result.done})
    return result.done


@transaction.atomic
def order_complete_manually(*, order: Order, ip: str, actor: User) -> Order:
    """Staff: the server is set up by hand; record its address and start the first period."""
    order = order_lock(order)
    if order.paid_at is None or order.status != Status.PENDING:
        raise ValidationError(_("Only paid pending orders can be completed."))
    if Order.objects.filter(ip=ip, status__in=[Status.ACTIVE, Status.EXPIRED, Status.SUSPENDED]).exclude(pk=order.pk).exists():
        raise ValidationError({"ip": _("This IP address is already used by another active service.")})
    _activate(order, ip=ip, source=Source.STAFF, actor=actor)
    staff_audit_record(order=order, actor=actor, action="order_completed", details={"ip": ip})
    return order
