"""Promo codes: validity, the discount they give, and counting their uses exactly.

Discount rule (docs/ARCHITECTURE.md, "Promo codes"): the discountable base is the plan price of the
discounted periods (when the code applies to the plan) plus the setup fee (when it applies to it; only
the first invoice has one). A percentage code takes `base × value ÷ 100`, rounded once, half up, to the
currency's minor unit; a fixed code takes `value × discounted periods`, never more than the base. The
discount is a negative invoice line, so tax is charged on the discounted subtotal and revenue is
recognised net of it. A code for N periods discounts periods 1..N of the order (renewals included).

Add-ons (`applies_to_addons`) are discounted as items of their own, by the same rule on each
add-on's amount (a percentage of it, or the fixed value per period, never more than it), each with
its own discount line referencing the add-on; so what was paid for an add-on in a period is known
exactly (`addon_net_amounts`), and removing it never credits more than that.

Uses: `promo_redeem` locks the code row (`FOR NO KEY UPDATE`, after the plan row and before the new
order's invoice number) and counts the uses not released, so a 10-use code gives exactly 10 discounts
however many orders race for it. An order cancelled unpaid releases its use.
"""
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.content import localized
from accounts.models import Customer
from billing.money import quantize
from billing.services.invoices import LineInput

from .models import Order, OrderRenewal, Plan, PromoCode, PromoRedemption

ZERO = Decimal("0")


def promo_normalize(code: str) -> str:
    return (code or "").strip().upper()


def _used(promo: PromoCode, *, customer: Customer | None = None) -> int:
    uses = PromoRedemption.objects.filter(promo=promo, released_at__isnull=True)
    if customer is not None:
        uses = uses.filter(customer=customer)
    return uses.count()


def _check(promo: PromoCode, *, customer: Customer, plan: Plan, currency: str, now: datetime) -> None:
    """Raise a customer-facing ValidationError when `promo` cannot be used on this order."""
    if not promo.is_active or (promo.valid_from and now < promo.valid_from) or (promo.valid_until and now >= promo.valid_until):
        raise ValidationError(_("This promo code is not valid now."), code="promo_expired")
    if promo.currency and promo.currency != currency:
        raise ValidationError(_("This promo code is only for orders in %(currency)s.") % {"currency": promo.currency},
                              code="promo_currency")
    if promo.plans.exists() and not promo.plans.filter(pk=plan.pk).exists():
        raise ValidationError(_("This promo code does not apply to this plan."), code="promo_plan")
    if promo.new_customers_only and Order.objects.filter(customer=customer, paid_at__isnull=False).exists():
        raise ValidationError(_("This promo code is for new customers only."), code="promo_new_only")
    if promo.max_uses is not None and _used(promo) >= promo.max_uses:
        raise ValidationError(_("This promo code has been used up."), code="promo_used_up")
    if promo.max_uses_per_customer is not None and _used(promo, customer=customer) >= promo.max_uses_per_customer:
        raise ValidationError(_("You have already used this promo code."), code="promo_used_by_you")


def promo_find(*, code: str, customer: Customer, plan: Plan, currency: str, now: datetime | None = None) -> PromoCode:
    """The usable code typed by the customer (checked without a lock: for the review page)."""
    promo = PromoCode.objects.filter(code=promo_normalize(code)).first()
    if promo is None:
        raise ValidationError(_("There is no such promo code."), code="promo_unknown")
    _check(promo, customer=customer, plan=plan, currency=currency, now=now or timezone.now())
    return promo


def discounted_periods(promo: PromoCode, *, first_period: int, periods: int) -> int:
    """How many of the order's periods first_period..first_period+periods-1 the code discounts."""
    last = first_period + periods - 1
    if promo.periods is None:
        return periods
    return max(0, min(last, promo.periods) - first_period + 1)


def _discount(promo: PromoCode, *, base: Decimal, count: int, currency: str) -> Decimal:
    """The rule: a percentage of `base` rounded once, or the fixed value × periods; never above `base`."""
    if base <= 0:
        return ZERO
    if promo.kind == PromoCode.Kind.PERCENT:
        return min(quantize(base * promo.value / 100, currency), base)
    return min(quantize(promo.value * max(count, 1), currency), base)


def promo_discount(promo: PromoCode, *, period_price: Decimal, setup_fee: Decimal, currency: str,
                   first_period: int = 1, periods: int = 1) -> Decimal:
    """The discount (>= 0) on an invoice for `periods` periods from `first_period` at `period_price`."""
    if promo.currency and promo.currency != currency:
        return ZERO
    count = discounted_periods(promo, first_period=first_period, periods=periods)
    base = (period_price * count if promo.applies_to_plan else ZERO) + (setup_fee if promo.applies_to_setup_fee else ZERO)
    return _discount(promo, base=base, count=count, currency=currency)


def addon_discount(promo: PromoCode | None, *, amount: Decimal, currency: str, first_period: int = 1,
                   periods: int = 1) -> Decimal:
    """The discount (>= 0) of one add-on costing `amount` a period, for `periods` periods from
    `first_period`: the same rule on the add-on alone."""
    if promo is None or not promo.applies_to_addons or (promo.currency and promo.currency != currency):
        return ZERO
    count = discounted_periods(promo, first_period=first_period, periods=periods)
    if count == 0:
        return ZERO
    return _discount(promo, base=amount * count, count=count, currency=currency)


def order_promo(order: Order) -> PromoCode | None:
    """The code counted for `order` (not released), or None."""
    use = PromoRedemption.objects.filter(order=order, released_at__isnull=True).select_related("promo").first()
    return use.promo if use is not None else None


def addon_net_amounts(promo: PromoCode | None, *, amount: Decimal, currency: str, first_period: int,
                      periods: int) -> list[Decimal]:
    """What an add-on costing `amount` a period costs in each of `periods` periods from `first_period`
    after the code's discount: the per-period prices add-on changes are prorated on."""
    return [amount - addon_discount(promo, amount=amount, currency=currency, first_period=period)
            for period in range(first_period, first_period + periods)]


def discount_line(promo: PromoCode, *, amount: Decimal, language: str, reference: str) -> LineInput:
    with translation.override(language):
        description = _("Promo code %(code)s") % {"code": promo.code}
    return LineInput(description=description, quantity=1, unit_price=-amount, reference=reference, discount=True)


def promo_redeem(*, promo: PromoCode, customer: Customer, order: Order, plan: Plan, now: datetime | None = None) -> PromoRedemption:
    """Count one use of `promo` for `order`, or raise ValidationError (used up, expired meanwhile…).

    Call inside the order's transaction: the code row stays locked until it commits, so concurrent
    orders count each other's uses."""
    locked = PromoCode.objects.select_for_update(no_key=True).get(pk=promo.pk)
    _check(locked, customer=customer, plan=plan, currency=order.currency, now=now or timezone.now())
    return PromoRedemption.objects.create(promo=locked, customer=customer, order=order)


def promo_release(*, order: Order) -> None:
    """An order cancelled unpaid gives its use back."""
    PromoRedemption.objects.filter(order=order, released_at__isnull=True).update(released_at=timezone.now())


def addon_discount_line(promo: PromoCode, *, addon_name: str, amount: Decimal, language: str, reference: str) -> LineInput:
    with translation.override(language):
        description = _("Promo code %(code)s: %(addon)s") % {"code": promo.code, "addon": addon_name}
    return LineInput(description=description, quantity=1, unit_price=-amount, reference=reference, discount=True)


def renewal_discount_lines(*, order: Order, renewal: OrderRenewal) -> list[LineInput]:
    """The discount lines of a renewal invoice, for a code that covers some of the renewed periods:
    one for the plan, one per add-on the code covers."""
    from .addons import addon_line_reference, renewal_addon_items

    promo = order_promo(order)
    if promo is None:
        return []
    items = renewal_addon_items(renewal)
    plan_part = renewal.amount / renewal.periods - sum((item.amount for item in items), ZERO)
    reference = f"{order.reference}:period:{renewal.period}"
    lines = []
    amount = promo_discount(promo, period_price=plan_part, setup_fee=ZERO, currency=renewal.currency,
                            first_period=renewal.period, periods=renewal.periods)
    if amount:
        lines.append(discount_line(promo, amount=amount, language=order.customer.language, reference=reference))
    for item in items:
        amount = addon_discount(promo, amount=item.amount, currency=renewal.currency, first_period=renewal.period,
                                periods=renewal.periods)
        if amount:
            with translation.override(order.customer.language):
                name = localized(item.addon, "name")
            lines.append(addon_discount_line(promo, addon_name=name, amount=amount, language=order.customer.language,
                                             reference=addon_line_reference(reference, item.addon_id)))
    return lines


def orders_with_renewal_discount(renewals: dict[int, OrderRenewal]) -> set[int]:
    """Of {order id: renewal}, the orders whose renewal gets a discount line (one query for a chunk;
    the renewal job sends them through the one-by-one path)."""
    uses = PromoRedemption.objects.filter(order_id__in=list(renewals), released_at__isnull=True).select_related("promo")
    return {use.order_id for use in uses
            if discounted_periods(use.promo, first_period=renewals[use.order_id].period,
                                  periods=renewals[use.order_id].periods) > 0}
