"""Prices, periods and proration. Pure functions over Decimal and calendar dates (no writes).

Proration rule (docs/ARCHITECTURE.md, "Orders"): an upgrade costs
    (new period price − current period price) × (remaining days ÷ days in the current period
                                                   + already-paid periods after the current one)
where days are real calendar days in the portal's time zone, the current period is the billing
period containing today, "remaining" counts from today (included) to the period's end (excluded),
and the result is rounded once, half up, to the currency's minor unit. Downgrades cost nothing now
and take effect at the next renewal.
"""
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.money import quantize

from .models import Order, Plan, PlanPrice

ZERO = Decimal("0")


@dataclass(frozen=True)
class Price:
    amount: Decimal
    currency: str
    # Set when no price is stored in `currency`: converted from `converted_from` at `rate`.
    converted_from: str = ""
    rate: Decimal | None = None

    @property
    def is_converted(self) -> bool:
        return bool(self.converted_from)


def convert(amount: Decimal, from_currency: str, to_currency: str) -> tuple[Decimal, Decimal]:
    """Convert at billing's current rate; returns (unrounded amount, rate used: 1 `from` = rate `to`)."""
    from billing import rates

    try:
        quote = rates.quote(from_currency, to_currency)
    except rates.RateError as error:
        raise ValidationError(str(error), code="no_rate") from error
    return amount * quote.rate, quote.rate


def plan_price(*, plan: Plan, period_months: int, currency: str, prices: list[PlanPrice] | None = None) -> Price:
    """The price of one period in `currency`: stored, or converted from the plan's base currency."""
    rows = prices if prices is not None else list(plan.prices.all())
    by_key = {(row.period_months, row.currency): row.amount for row in rows}
    if (period_months, currency) in by_key:
        return Price(amount=by_key[(period_months, currency)], currency=currency)
    base = by_key.get((period_months, plan.base_currency))
    if base is None:
        raise ValidationError(_("This plan is not sold for a %(months)s-month period.") % {"months": period_months},
                              code="no_price")
    amount, rate = convert(base, plan.base_currency, currency)
    return Price(amount=quantize(amount, currency), currency=currency, converted_from=plan.base_currency, rate=rate)


def setup_fee(*, plan: Plan, currency: str) -> Price:
    if not plan.setup_fee:
        return Price(amount=ZERO, currency=currency)
    if plan.base_currency == currency:
        return Price(amount=quantize(plan.setup_fee, currency), currency=currency)
    amount, rate = convert(plan.setup_fee, plan.base_currency, currency)
    return Price(amount=quantize(amount, currency), currency=currency, converted_from=plan.base_currency, rate=rate)


def available_periods(plan: Plan) -> list[int]:
    return sorted({row.period_months for row in plan.prices.all()})


def add_months(anchor: datetime, months: int) -> datetime:
    """Month arithmetic that clamps to the month end (Jan 31 + 1 month = Feb 28/29) without drifting,
    because callers always add the total number of months to the same anchor."""
    return anchor + relativedelta(months=months)


def local_date(moment: datetime) -> date:
    return timezone.localtime(moment).date()


@dataclass(frozen=True)
class Proration:
    old_price: Decimal
    new_price: Decimal
    period_days: int
    remaining_days: int
    amount: Decimal
    currency: str
    later_periods: int = 0

    @property
    def is_upgrade(self) -> bool:
        return self.new_price > self.old_price


def prorate(*, old_price: Decimal, new_price: Decimal, period_start: date, period_end: date, today: date,
            currency: str, later_periods: int = 0) -> Proration:
    """The charge for switching price for the rest of [period_start, period_end) plus `later_periods`
    whole periods already paid for; see the module docstring."""
    period_days = (period_end - period_start).days
    if period_days <= 0:
        raise ValueError("empty period")
    remaining = min(period_days, max(0, (period_end - today).days))
    difference = new_price - old_price
    amount = ZERO
    if difference > 0:
        amount = quantize(difference * (remaining + later_periods * period_days) / period_days, currency)
    return Proration(old_price=old_price, new_price=new_price, period_days=period_days, remaining_days=remaining,
                     amount=amount, currency=currency, later_periods=later_periods)


def period_bounds(order: Order) -> list[datetime]:
    """Start of every billing period from the anchor to the expiry (the last item is the expiry)."""
    count = max(1, order.anchor_months // order.period_months)
    return [add_months(order.anchor_at, n * order.period_months) for n in range(count + 1)]


def order_proration(*, order: Order, new_price: Decimal, now: datetime | None = None) -> Proration:
    now = now or timezone.now()
    bounds = period_bounds(order)
    current = max((n for n in range(len(bounds) - 1) if bounds[n] <= now), default=0)
    return prorate(old_price=order.price, new_price=new_price, period_start=local_date(bounds[current]),
                   period_end=local_date(bounds[current + 1]), today=local_date(now), currency=order.currency,
                   later_periods=len(bounds) - 2 - current)
