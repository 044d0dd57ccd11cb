"""Prices, periods and proration. Pure functions over Decimal and calendar dates (no writes).

Proration rule (docs/ARCHITECTURE.md, "Orders"): an upgrade costs
    (new period price − current period price) × (remaining days ÷ days in the current period
                                                   + already-paid periods after the current one)
where days are real calendar days in the customer's time zone, the current period is the billing
period containing today, "remaining" counts from today (included) to the period's end (excluded),
and the result is rounded once, half up, to the currency's minor unit. Downgrades cost nothing now
and take effect at the next renewal.

Add-ons use the same rule per period (`prorated`): taking more steps costs, and removing steps
credits, the difference of the add-on's price for the remaining days of the current period plus
every period already paid after it — with each period's price net of the promo-code discount that
period gets, so a credit never returns more than was paid. Rounded once, half up.
"""
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.money import quantize

from .models import Order, PeriodPrice, Plan, PlanAddon, PlanAddonPrice, PlanPrice

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


def convert(amount: Decimal, from_currency: str, to_currency: str, table=None) -> tuple[Decimal, Decimal]:
    """Convert at billing's current rate (from `table`, a loaded `billing.rates.RateTable`, when given);
    returns (unrounded amount, rate used: 1 `from` = rate `to`)."""
    from billing import rates

    try:
        quote = (table if table is not None else rates).quote(from_currency, to_currency)
    except rates.RateError as error:
        raise ValidationError(error.messages, code="no_rate") from error
    return amount * quote.rate, quote.rate


def _stored_or_converted(rows: list[PeriodPrice], *, period_months: int, currency: str, base_currency: str,
                         table=None) -> Price | None:
    """The price stored for (period, currency), else the base currency's converted at today's rate;
    None when neither is stored. Plans and add-ons (both `PeriodPrice` rows) are priced by this one rule."""
    by_key = {(row.period_months, row.currency): row.amount for row in rows}
    if (period_months, currency) in by_key:
        return Price(amount=by_key[(period_months, currency)], currency=currency)
    base = by_key.get((period_months, base_currency))
    if base is None:
        return None
    amount, rate = convert(base, base_currency, currency, table)
    return Price(amount=quantize(amount, currency), currency=currency, converted_from=base_currency, rate=rate)


def plan_price(*, plan: Plan, period_months: int, currency: str, prices: list[PlanPrice] | None = None,
               table=None) -> Price:
    """The price of one period in `currency`: stored, or converted from the plan's base currency.
    `prices` (the plan's rows) and `table` (loaded rates) spare the queries when pricing many orders."""
    rows = prices if prices is not None else list(plan.prices.all())
    price = _stored_or_converted(rows, period_months=period_months, currency=currency, base_currency=plan.base_currency,
                                 table=table)
    if price is None:
        raise ValidationError(_("This plan is not sold for a %(months)s-month period.") % {"months": period_months},
                              code="no_price")
    return price


def addon_price(*, addon: PlanAddon, period_months: int, currency: str,
                prices: list[PlanAddonPrice] | None = None, table=None) -> Price:
    """One step of `addon` for one period in `currency`: stored, or converted from its plan's base currency
    (`prices` and `table` as for `plan_price`)."""
    rows = prices if prices is not None else list(addon.prices.all())
    price = _stored_or_converted(rows, period_months=period_months, currency=currency,
                                 base_currency=addon.plan.base_currency, table=table)
    if price is None:
        raise ValidationError(_("%(addon)s is not sold for a %(months)s-month period.") % {
            "addon": addon.name, "months": period_months}, code="addon_no_price")
    return price


def shortest_period(plan: Plan) -> int | None:
    """The shortest period the plan is priced for (from its prices, prefetched by the catalogue
    selectors); None when it has none."""
    return min((price.period_months for price in plan.prices.all()), default=None)


def renewal_plan(order: Order) -> Plan:
    """The plan the next renewal is for: a scheduled downgrade's, else the order's."""
    return order.scheduled_plan or order.plan


def renewal_price(order: Order, *, prices: list[PlanPrice] | None = None, table=None) -> Decimal:
    """Price of one period at the next renewal: the plan's (a scheduled downgrade's price, else the
    order's) plus the add-ons the service holds (`Order.addons_price`). The one renewal pricing rule:
    the renewal job, the renew page and the forecasts all call it (`prices` and `table` as for
    `plan_price`)."""
    if order.scheduled_plan_id is None:
        return order.price + order.addons_price
    return plan_price(plan=order.scheduled_plan, period_months=order.period_months, currency=order.currency,
                      prices=prices, table=table).amount + order.addons_price


def renewal_amount(order: Order, *, prices: list[PlanPrice] | None = None, table=None) -> Decimal:
    """One period's renewal price rounded to the order currency's minor unit, as the renewal job stores
    it on the `OrderRenewal` (and bills it as the invoice's subtotal)."""
    return quantize(renewal_price(order, prices=prices, table=table), order.currency)


def setup_fee(*, plan: Plan, currency: str) -> Price:
    if not plan.setup_fee:
        return Price(amount=ZERO, currency=currency)
    if plan.base_currency == currency:
        return Price(amount=quantize(plan.setup_fee, currency), currency=currency)
    amount, rate = convert(plan.setup_fee, plan.base_currency, currency)
    return Price(amount=quantize(amount, currency), currency=currency, converted_from=plan.base_currency, rate=rate)


def add_months(anchor: datetime, months: int, zone: tzinfo | None = None) -> datetime:
    """Month arithmetic that clamps to the month end (Jan 31 + 1 month = Feb 28/29) without drifting,
    because callers always add the total number of months to the same anchor. With `zone` (the
    customer's) it runs on that zone's wall clock, so a period that starts at 23:30 before a DST
    change still ends at 23:30 on the same day of a later month, not an hour later on the next day."""
    if zone is None:
        return anchor + relativedelta(months=months)
    local = timezone.localtime(anchor, zone).replace(tzinfo=None) + relativedelta(months=months)
    return timezone.make_aware(local, zone)


def add_days(moment: datetime, days: int, zone: tzinfo) -> datetime:
    """`days` calendar days later on `zone`'s wall clock (a DST night does not move the hour)."""
    local = timezone.localtime(moment, zone).replace(tzinfo=None) + timedelta(days=days)
    return timezone.make_aware(local, zone)


def order_zone(order: Order) -> tzinfo:
    """Periods are counted on the customer's calendar."""
    from accounts.middleware import customer_zone

    return customer_zone(order.customer)


def local_date(moment: datetime, zone: tzinfo | None = None) -> date:
    return timezone.localtime(moment, zone).date()


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


@dataclass(frozen=True)
class PeriodPosition:
    """Where today falls in an order's paid span: the current period [start, end) in the customer's
    calendar days, and how many whole periods are already paid after it."""
    period_start: date
    period_end: date
    today: date
    later_periods: int = 0

    @property
    def period_days(self) -> int:
        return (self.period_end - self.period_start).days

    @property
    def remaining_days(self) -> int:
        """Today (included) to the period end (excluded)."""
        return min(self.period_days, max(0, (self.period_end - self.today).days))


def prorated(*, differences: list[Decimal], position: PeriodPosition) -> Decimal:
    """THE proration rule, unrounded: `differences[0]` (the current period's price change) for the
    remaining days of the current period, then each later paid period's change in whole."""
    period_days = position.period_days
    if period_days <= 0:
        raise ValueError("empty period")
    whole = sum(differences[1:], ZERO)
    return (differences[0] * position.remaining_days + whole * period_days) / period_days


def prorate(*, old_price: Decimal, new_price: Decimal, period_start: date, period_end: date, today: date,
            currency: str, later_periods: int = 0) -> Proration:
    """The charge for switching price for the rest of [period_start, period_end) plus `later_periods`
    whole periods already paid for; see the module docstring."""
    position = PeriodPosition(period_start=period_start, period_end=period_end, today=today, later_periods=later_periods)
    if position.period_days <= 0:
        raise ValueError("empty period")
    difference = new_price - old_price
    amount = ZERO
    if difference > 0:
        amount = quantize(prorated(differences=[difference] * (1 + later_periods), position=position), currency)
    return Proration(old_price=old_price, new_price=new_price, period_days=position.period_days,
                     remaining_days=position.remaining_days, amount=amount, currency=currency, later_periods=later_periods)


def period_bounds(order: Order, zone: tzinfo | None = None) -> list[datetime]:
    """Start of every billing period of the paid span, then the expiry (the last item).

    Periods are whole months counted from the anchor: forwards for the months renewed after it, and
    backwards over the span paid before it when a staff extension re-anchored the order on its new
    expiry. What is left at the start (the extension's days) joins the first period, so no period is
    shorter than a whole one."""
    zone = zone or order_zone(order)
    step = order.period_months
    anchor = order.anchor_at
    forward = [add_months(anchor, n * step, zone) for n in range(max(1, order.anchor_months // step) + 1)]
    start = order.period_started_at or anchor
    backward: list[datetime] = []
    while (bound := add_months(anchor, -(len(backward) + 1) * step, zone)) > start:
        backward.insert(0, bound)
    if start >= anchor:
        return forward
    middle = [*backward, anchor]
    if len(middle) > 1 and add_months(start, step, zone) > middle[0]:
        middle.pop(0)  # a remainder shorter than a period joins the next one
    return [start, *middle, *forward[1:]] if order.anchor_months else [start, *middle]


def order_position(order: Order, now: datetime | None = None) -> PeriodPosition:
    """The billing period of `order` containing `now` (`period_bounds`), in the customer's calendar."""
    now = now or timezone.now()
    zone = order_zone(order)
    bounds = period_bounds(order, zone)
    current = max((n for n in range(len(bounds) - 1) if bounds[n] <= now), default=0)
    return PeriodPosition(period_start=local_date(bounds[current], zone), period_end=local_date(bounds[current + 1], zone),
                          today=local_date(now, zone), later_periods=len(bounds) - 2 - current)


def order_proration(*, order: Order, new_price: Decimal, now: datetime | None = None) -> Proration:
    position = order_position(order, now)
    return prorate(old_price=order.price, new_price=new_price, period_start=position.period_start,
                   period_end=position.period_end, today=position.today, currency=order.currency,
                   later_periods=position.later_periods)
