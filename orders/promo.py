"""Promo codes: validity, the discount they give, and counting their uses exactly.

Discount rule (docs/ARCHITECTURE.md, "Promo codes"): the discountable base is the plan price of the
discounted periods (when the code applies to the plan) plus the setup fee (when it applies to it; only
the first invoice has one). A percentage code takes `base × value ÷ 100`, rounded once, half up, to the
currency's minor unit; a fixed code takes `value × discounted periods`, never more than the base. The
discount is a negative invoice line, so tax is charged on the discounted subtotal and revenue is
recognised net of it. A code for N periods discounts periods 1..N of the order (renewals included).

Uses: `promo_redeem` locks the code row (`FOR NO KEY UPDATE`, after the plan row and before the new
order's invoice number) and counts the uses not released, so a 10-use code gives exactly 10 discounts
however many orders race for it. An order cancelled unpaid releases its use.
"""
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils import timezone, translation
from django.utils.translation import gettext as _

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


def promo_discount(promo: PromoCode, *, period_price: Decimal, setup_fee: Decimal, currency: str,
                   first_period: int = 1, periods: int = 1) -> Decimal:
    """The discount (>= 0) on an invoice for `periods` periods from `first_period` at `period_price`."""
    if promo.currency and promo.currency != currency:
        return ZERO
    count = discounted_periods(promo, first_period=first_period, periods=periods)
    base = (period_price * count if promo.applies_to_plan else ZERO) + (setup_fee if promo.applies_to_setup_fee else ZERO)
    if base <= 0:
        return ZERO
    if promo.kind == PromoCode.Kind.PERCENT:
        return min(quantize(base * promo.value / 100, currency), base)
    return min(quantize(promo.value * max(count, 1), currency), base)


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


def renewal_discount_lines(*, order: Order, renewal: OrderRenewal) -> list[LineInput]:
    """The discount line of a renewal invoice, for a code that covers some of the renewed periods."""
    use = PromoRedemption.objects.filter(order=order, released_at__isnull=True).select_related("promo").first()
    if use is None:
        return []
    amount = promo_discount(use.promo, period_price=renewal.amount / renewal.periods, setup_fee=ZERO,
                            currency=renewal.currency, first_period=renewal.period, periods=renewal.periods)
    if not amount:
        return []
    return [discount_line(use.promo, amount=amount, language=order.customer.language,
                          reference=f"{order.reference}:period:{renewal.period}")]


def orders_with_renewal_discount(renewals: dict[int, OrderRenewal]) -> set[int]:
    """Of {order id: renewal}, the orders whose renewal gets a discount line (one query for a chunk;
    the renewal job sends them through the one-by-one path)."""
    uses = PromoRedemption.objects.filter(order_id__in=list(renewals), released_at__isnull=True).select_related("promo")
    return {use.order_id for use in uses
            if discounted_periods(use.promo, first_period=renewals[use.order_id].period,
                                  periods=renewals[use.order_id].periods) > 0}
