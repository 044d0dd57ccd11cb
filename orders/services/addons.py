"""Add-ons of a running service: taking more steps (invoiced, prorated, applied when paid) and
removing steps (applied at once, the unused part credited).

Proration (docs/ARCHITECTURE.md, "Add-ons"; `pricing.prorated`): the same calendar-day rule as a
plan upgrade, per period: the difference of the add-on's price for the remaining days of the
current period plus every period already paid after it, each period's price net of the promo-code
discount it gets (`promo.addon_net_amounts`), rounded once, half up.

- More steps: an invoice (kind plan change, reference `order:<id>:addon-change:<k>`) with the
  prorated list price and, when the order's promo code covers add-ons, its discount line; paid from
  the balance when it covers it, else the customer pays it like any invoice. Paying applies the
  change (`on_addon_change_invoice_paid`, inside the paying transaction).
- Fewer steps: applied now; the prorated amount plus the tax it bore is credited to the balance with
  credit notes (`billing credit_note_issue`: revenue and tax reversed) against the paid invoices
  that charged the add-on, newest first, never more than each has left to refund. Disk space never
  shrinks, so the extra-disk add-on cannot be reduced.
- Applying changes `OrderAddon` and `Order.addons_price`, takes or gives back extra addresses from
  the plan's pool and queues a resize of the VM after commit (`provisioning.on_addons_changed`), and
  withdraws pending renewals priced with the old add-ons (re-issued after commit).
"""
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.content import localized
from accounts.models import User
from billing.models import Invoice, InvoiceLine
from billing.money import quantize
from billing.services.corrections import credit_note_issue
from billing.services.errors import BillingError
from billing.services.invoices import LineInput, invoice_cancel, invoice_issue, invoice_pay_from_balance

from .. import addons as catalogue
from .. import pricing, promo, provisioning
from ..models import AddonChange, Order, OrderAddon, Plan, PlanAddon
from .common import Source, Status, event_record, event_source_for, money_for_customer, order_lock
from .plan_change import stale_renewals_withdraw

ZERO = Decimal("0")
Kind = PlanAddon.Kind


@dataclass(frozen=True)
class AddonChangeQuote:
    order: Order
    addon: PlanAddon
    quantity_from: int
    quantity_to: int
    unit_price: Decimal  # a step per period: the price held, or the catalogue's for a new add-on
    position: pricing.PeriodPosition
    first_period: int  # the order period today falls in
    list_amount: Decimal  # more steps: the prorated list price (the invoice line)
    amount: Decimal  # more steps: what is charged, net of the promo discount
    credit: Decimal  # fewer steps: what is credited (before tax)

    @property
    def is_increase(self) -> bool:
        return self.quantity_to > self.quantity_from

    @property
    def discount(self) -> Decimal:
        return self.list_amount - self.amount

    @property
    def delta(self) -> int:
        return self.quantity_to - self.quantity_from

    @property
    def label_from(self) -> str:
        return dict(catalogue.quantity_choices(self.addon)).get(self.quantity_from, "")

    @property
    def label_to(self) -> str:
        return dict(catalogue.quantity_choices(self.addon)).get(self.quantity_to, "")


def addon_held(order: Order, addon: PlanAddon) -> OrderAddon | None:
    return OrderAddon.objects.filter(order=order, addon=addon).first()


def addon_change_quote(*, order: Order, addon: PlanAddon, quantity: int, now: datetime | None = None) -> AddonChangeQuote:
    """What changing `addon` to `quantity` steps costs or credits now; a ValidationError says why not."""
    if order.status != Status.ACTIVE:
        raise ValidationError(_("The add-ons of an active service can be changed."), code="status")
    held = addon_held(order, addon)
    current = held.quantity if held else 0
    if addon.plan_id != order.plan_id or (not addon.is_active and quantity > current):
        raise ValidationError(_("This add-on is not offered with this plan."), code="addon_unknown")
    catalogue.check_quantity(addon, quantity)
    if quantity == current:
        raise ValidationError(_("Choose another number of steps: this is what the service has."), code="addon_unchanged")
    if order.scheduled_plan_id is not None:
        raise ValidationError(_("A plan change is scheduled: keep the current plan or wait for the renewal before "
                                "changing add-ons."), code="addon_plan_scheduled")
    if addon.kind == Kind.DISK and quantity < current:
        raise ValidationError(_("Disks cannot shrink: extra disk space stays until the service ends."), code="addon_disk_shrink")
    if addon.kind == Kind.IPV4 and quantity > current:
        from ..provisioning.ip_pool import free_addresses

        if free_addresses(order.plan.ip_pool_id) < (quantity - current) * addon.step:
            raise ValidationError(_("Not enough free IPv4 addresses right now; please contact support."),
                                  code="addon_no_addresses")
    unit_price = held.unit_price if held else pricing.addon_price(
        addon=addon, period_months=order.period_months, currency=order.currency).amount
    position = pricing.order_position(order, now)
    if quantity > current and position.remaining_days == 0:
        raise ValidationError(_("The current period ends today; renew first, then add."), code="period_end")
    periods = 1 + position.later_periods
    first_period = max(1, order.current_period - position.later_periods)
    code = promo.order_promo(order)

    def nets(steps: int) -> list[Decimal]:
        return promo.addon_net_amounts(code, amount=unit_price * steps, currency=order.currency,
                                       first_period=first_period, periods=periods)

    net = pricing.prorated(differences=[new - old for new, old in zip(nets(quantity), nets(current))], position=position)
    listed = pricing.prorated(differences=[unit_price * (quantity - current)] * periods, position=position)
    if quantity > current:
        amount, list_amount, credit = quantize(net, order.currency), quantize(listed, order.currency), ZERO
    else:
        amount, list_amount, credit = ZERO, ZERO, quantize(-net, order.currency)
    return AddonChangeQuote(order=order, addon=addon, quantity_from=current, quantity_to=quantity, unit_price=unit_price,
                            position=position, first_period=first_period, list_amount=list_amount, amount=amount,
                            credit=credit)


@dataclass(frozen=True)
class AddonChangeResult:
    change: AddonChange
    invoice: Invoice | None = None
    paid: bool = False
    credit_notes: tuple[str, ...] = ()
    missing_addresses: int = 0

    @property
    def applied(self) -> bool:
        return self.change.status == AddonChange.Status.APPLIED


@transaction.atomic
def order_addon_change(*, order: Order, addon: PlanAddon, quantity: int, actor: User | None,
                       expected_amount: Decimal | None = None) -> AddonChangeResult:
    """Change a running service's add-on to `quantity` steps (see the module docstring).
    `expected_amount` is the charge or credit the customer confirmed; if the quote moved since (a day
    passed), nothing happens."""
    order = order_lock(order)
    quote = addon_change_quote(order=order, addon=addon, quantity=quantity)
    shown = quote.amount if quote.is_increase else quote.credit
    if expected_amount is not None and expected_amount != shown:
        raise ValidationError(_("The price changed since you opened this page; check the new amount."), code="stale_quote")
    _pending_changes_cancel(order, addon)
    change = AddonChange.objects.create(
        order=order, addon=addon, quantity_from=quote.quantity_from, quantity_to=quote.quantity_to,
        unit_price=quote.unit_price, period=order.current_period, amount=quote.amount, credit=quote.credit,
        currency=order.currency, actor=actor if actor is not None and actor.pk else None)
    if quote.is_increase:
        invoice = _invoice_issue(order=order, change=change, quote=quote)
        event_record(order=order, action="addon_invoiced", source=event_source_for(actor), actor=actor,
                     details={"addon": addon.name, "from": quote.quantity_from, "to": quote.quantity_to,
                              "amount": str(quote.amount), "invoice": invoice.number})
        paid = invoice_pay_from_balance(invoice=invoice, actor=actor)
        change.refresh_from_db()
        return AddonChangeResult(change=change, invoice=invoice, paid=paid)
    notes = _credit(order=order, change=change, actor=actor)
    missing = _apply(order=order, change=change, source=event_source_for(actor), actor=actor)
    change.credit_notes = notes
    change.save(update_fields=["credit_notes"])
    return AddonChangeResult(change=change, credit_notes=tuple(notes), missing_addresses=missing)


def _pending_changes_cancel(order: Order, addon: PlanAddon) -> None:
    """An earlier unpaid change of the same add-on is replaced (its invoice cancelled)."""
    for pending in AddonChange.objects.select_for_update().filter(order=order, addon=addon, status=AddonChange.Status.PENDING):
        if pending.invoice_id:
            invoice = Invoice.objects.get(pk=pending.invoice_id)
            if invoice.is_open:
                invoice_cancel(invoice=invoice, reason="replaced by a new add-on change")
        pending.status = AddonChange.Status.CANCELLED
        pending.save(update_fields=["status"])


def _days_text(quote: AddonChangeQuote) -> str:
    text = _("%(days)s of %(total)s days") % {"days": quote.position.remaining_days, "total": quote.position.period_days}
    if quote.position.later_periods:
        text += _(" and %(n)s paid period(s) after it") % {"n": quote.position.later_periods}
    return text


def _invoice_issue(*, order: Order, change: AddonChange, quote: AddonChangeQuote) -> Invoice:
    base = f"{order.reference}:addon-change:{change.pk}"
    line_reference = catalogue.addon_line_reference(base, quote.addon.pk)
    with translation.override(order.customer.language):
        description = _("%(addon)s added to order #%(id)s: %(days)s") % {
            "addon": catalogue.describe(quote.addon, quote.delta), "id": order.pk, "days": _days_text(quote)}
        lines = [LineInput(description=description, quantity=1, unit_price=quote.list_amount, reference=line_reference)]
        code = promo.order_promo(order)
        if quote.discount and code is not None:
            lines.append(promo.addon_discount_line(code, addon_name=localized(quote.addon, "name"), amount=quote.discount,
                                                   language=order.customer.language, reference=line_reference))
    invoice = invoice_issue(customer=order.customer, kind=Invoice.Kind.PLAN_CHANGE, currency=order.currency, lines=lines,
                            idempotency_key=base, reference=base)
    change.invoice_id = invoice.pk
    change.save(update_fields=["invoice_id"])
    return invoice


def on_addon_change_invoice_paid(invoice: Invoice) -> None:
    """billing hook (kind PLAN_CHANGE, beside the plan upgrade's): apply the paid add-on change."""
    change = AddonChange.objects.select_for_update().filter(invoice_id=invoice.pk).first()
    if change is None or change.status != AddonChange.Status.PENDING:
        return
    order = Order.objects.select_for_update(of=("self",)).select_related("plan", "customer").get(pk=change.order_id)
    if order.status not in (Status.ACTIVE, Status.EXPIRED, Status.SUSPENDED):
        change.status = AddonChange.Status.APPLIED
        change.applied_at = timezone.now()
        change.save(update_fields=["status", "applied_at"])
        event_record(order=order, action="addon_paid_after_end", source=Source.PAYMENT, details={"change": change.pk})
        return
    _apply(order=order, change=change, source=Source.PAYMENT, actor=None)
    stale_renewals_withdraw(order)


def _apply(*, order: Order, change: AddonChange, source: str, actor: User | None) -> int:
    """Hold the change's steps (more steps paid for are added to what the service holds now, should a
    change have happened meanwhile), refresh `addons_price`, and pass the resources on. Returns how
    many extra addresses the pool could not give (staff are told by the event)."""
    held = OrderAddon.objects.select_for_update().filter(order=order, addon=change.addon).first()
    current = held.quantity if held else 0
    if change.quantity_to > change.quantity_from:
        target = min(current + change.quantity_to - change.quantity_from, change.addon.max_quantity)
    else:
        target = change.quantity_to  # applied at once, under the same lock as its quote
    if target == 0:
        if held is not None:
            held.delete()
    elif held is None:
        OrderAddon.objects.create(order=order, addon=change.addon, quantity=target, unit_price=change.unit_price,
                                  currency=order.currency)
    else:
        held.quantity = target
        held.save(update_fields=["quantity"])
    addons_price_refresh(order)
    change.status = AddonChange.Status.APPLIED
    change.applied_at = timezone.now()
    change.save(update_fields=["status", "applied_at"])
    missing = provisioning.on_addons_changed(order, kind=change.addon.kind, actor=actor)
    details = {"addon": change.addon.name, "from": current, "to": target}
    if change.amount:
        details["amount"] = str(change.amount)
    if change.credit:
        details["credit"] = str(change.credit)
    if change.period != order.current_period:
        details["stale_period"] = True
    if missing:
        details["missing_addresses"] = missing
    event_record(order=order, action="addon_changed", source=source, actor=actor, details=details)
    if source != Source.PAYMENT:
        stale_renewals_withdraw(order)
    return missing


def addons_price_refresh(order: Order) -> None:
    """`Order.addons_price` = the sum of what the held add-ons cost a period."""
    total = ZERO
    for row in OrderAddon.objects.filter(order=order).values("quantity", "unit_price"):
        total += row["unit_price"] * row["quantity"]
    order.addons_price = quantize(total, order.currency)
    order.save(update_fields=["addons_price"])


def _credit(*, order: Order, change: AddonChange, actor: User | None) -> list[str]:
    """Credit `change.credit` (plus the tax it bore) to the balance with credit notes against the paid
    invoices that charged the add-on, newest first; returns their numbers."""
    remaining = change.credit
    if remaining <= 0:
        return []
    # The add-on's lines: this add-on's, or its equivalent's on a plan the service had before a plan change.
    matches = Q()
    for addon_id in _lineage(order, change.addon):
        matches |= Q(reference__endswith=f":addon:{addon_id}")
    invoice_ids = (InvoiceLine.objects.filter(matches, invoice__customer_id=order.customer_id, invoice__status=Invoice.Status.PAID,
                                              invoice__currency=order.currency, reference__startswith=f"{order.reference}:")
                   .values_list("invoice_id", flat=True).distinct())
    with translation.override(order.customer.language):
        reason = _("%(addon)s removed from order #%(id)s: unused part") % {
            "addon": catalogue.describe(change.addon, change.quantity_from - change.quantity_to), "id": order.pk}
    numbers = []
    for invoice in Invoice.objects.filter(pk__in=list(invoice_ids)).order_by("-issued_at", "-pk"):
        if remaining <= 0:
            break
        credited = invoice.credit_notes.aggregate(total=Sum("amount"))["total"] or ZERO
        refundable = invoice.total - credited
        wanted = remaining + quantize(remaining * invoice.tax_percent / 100, invoice.currency)
        amount = min(wanted, refundable)
        if amount <= 0:
            continue
        try:
            note = credit_note_issue(invoice=invoice, reason=reason, actor=actor, amount=amount)
        except BillingError:  # e.g. a refund of that invoice is being sent: try an older one
            continue
        numbers.append(note.number)
        remaining = ZERO if amount == wanted else remaining - (note.amount - note.tax_amount)
    return numbers


def _lineage(order: Order, addon: PlanAddon) -> set[int]:
    """`addon` and the add-ons of the same kind and step on the plans the service was on before."""
    from ..models import PlanChange

    plan_ids = {order.plan_id}
    for change in PlanChange.objects.filter(order=order).values("from_plan_id", "to_plan_id"):
        plan_ids |= {change["from_plan_id"], change["to_plan_id"]}
    plan_ids |= set(order.renewals.values_list("plan_id", flat=True))
    return {addon.pk} | set(PlanAddon.objects.filter(plan_id__in=plan_ids, kind=addon.kind, step=addon.step)
                            .values_list("pk", flat=True))


def addons_repoint(*, order: Order, plan: Plan) -> None:
    """The order switched to `plan`: its add-ons become the new plan's of the same kind and step
    (their price and steps are kept). `plan_change_addons_missing` refused the switch otherwise."""
    mapping = _plan_equivalents(order, plan)
    for held in OrderAddon.objects.filter(order=order).select_related("addon"):
        target = mapping.get(held.addon_id)
        if target is not None and target.pk != held.addon_id:
            OrderAddon.objects.filter(pk=held.pk).update(addon=target)


def _plan_equivalents(order: Order, plan: Plan) -> dict[int, PlanAddon]:
    offered = {(addon.kind, addon.step, addon.name): addon for addon in plan.addons.filter(is_active=True)}
    by_kind_step = {(addon.kind, addon.step): addon for addon in offered.values()}
    mapping = {}
    for held in OrderAddon.objects.filter(order=order).select_related("addon"):
        addon = held.addon
        match = offered.get((addon.kind, addon.step, addon.name)) or by_kind_step.get((addon.kind, addon.step))
        if match is not None and held.quantity <= match.max_quantity:
            mapping[addon.pk] = match
    return mapping


def plan_change_addons_missing(order: Order, plan: Plan) -> list[str]:
    """Names of the held add-ons `plan` does not offer (same kind and step, enough steps)."""
    mapping = _plan_equivalents(order, plan)
    return [localized(held.addon, "name") for held in OrderAddon.objects.filter(order=order).select_related("addon")
            if held.addon_id not in mapping]


def addon_change_summary(result: AddonChangeResult) -> str:
    """The message shown after a change (the credit and its credit notes named)."""
    change = result.change
    name = localized(change.addon, "name")
    if result.credit_notes:
        from billing.models import CreditNote

        credited = CreditNote.objects.filter(number__in=result.credit_notes).aggregate(total=Sum("amount"))["total"]
        return _("%(addon)s is changed; %(amount)s is credited to your balance (credit note %(notes)s).") % {
            "addon": name, "amount": money_for_customer(credited, change.currency, change.order.customer),
            "notes": ", ".join(result.credit_notes)}
    return _("%(addon)s is changed.") % {"addon": name}
