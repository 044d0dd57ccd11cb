"""The renewal forecast's former Python walk, kept as the tests' reference: it built a row object per
due order and walked them all in Python (orders.selectors.renewal_forecast now reads the due orders as
one statement of price keys and month indexes). Used only by test_forecast_sql.py to compare."""
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.models import Customer
from billing.gateways.selectors import card_auto_top_up_month_used, card_auto_top_up_settings_for
from billing.models import Currency, Invoice
from billing.money import quantize
from billing.rates import RateError, RateTable
from billing.selectors import balance_of, enabled_currencies, tax_for
from billing.tax import NO_TAX, TaxDecision, TaxNotConfigured, invoice_totals
from core.calendar import provider_today
from orders import pricing
from orders.models import Order, OrderRenewal, Plan, PlanPrice
from orders.selectors import FORECAST_DAYS, ForecastRow, RenewalForecast
from orders.services import renewal_batch

ZERO = Decimal("0")

# What the forecast and `pricing.renewal_amount` read of a due order. A heavy customer has hundreds due,
# so they are read as value rows: building Order and Plan instances cost more than the whole forecast.
FORECAST_ORDER_FIELDS = ("id", "expires_at", "currency", "price", "addons_price", "period_months", "plan__name",
                         "scheduled_plan_id", "scheduled_plan__base_currency", "scheduled_plan__name")


@dataclass(slots=True)
class _DueOrder:
    """A due order as `pricing.renewal_amount` reads it (the attributes of `Order` it uses)."""
    pk: int
    expires_at: dt.datetime
    currency: str
    price: Decimal
    addons_price: Decimal
    period_months: int
    plan_name: str
    scheduled_plan_id: int | None
    scheduled_plan: Plan | None


def _due_orders(queryset: QuerySet[Order]) -> list[_DueOrder]:
    scheduled_plans: dict[int, Plan] = {}
    orders = []
    for (pk, expires_at, currency, price, addons_price, period_months, plan_name, scheduled_id, scheduled_base_currency,
         scheduled_name) in queryset.values_list(*FORECAST_ORDER_FIELDS):
        scheduled = None
        if scheduled_id is not None:
            scheduled = scheduled_plans.get(scheduled_id)
            if scheduled is None:
                scheduled = scheduled_plans[scheduled_id] = Plan(pk=scheduled_id, base_currency=scheduled_base_currency,
                                                                 name=scheduled_name)
        orders.append(_DueOrder(pk, expires_at, currency, price, addons_price, period_months, plan_name, scheduled_id,
                                scheduled))
    return orders


def reference_forecast(*, customer: Customer, now: dt.datetime | None = None, days: int = FORECAST_DAYS,
                     currencies: list[Currency] | None = None, balance: Decimal | None = None,
                     shown: int | None = None) -> RenewalForecast:
    """Which services the auto-renewal job will renew in the next `days` days, for how much, and
    whether the balance (then auto-payment within its monthly cap) covers each in turn.

    The orders are the job's own `due_for_auto_renewal()` query evaluated at the end of the window;
    the price is the job's `pricing.renewal_amount()` (plan + add-ons), plus the tax billing adds when it issues the
    invoice (`billing.selectors.tax_for` and `billing.tax.invoice_totals`, as the job's invoices). A renewal invoice the job already issued (a pending
    renewal for the next period) is forecast at what it still asks for. Every due renewal is priced
    and counted (totals, coverage, shortfall), but only the soonest `shown` (DASHBOARD_FORECAST_ROWS)
    become rows. A fixed number of queries: the due orders with their plans, the scheduled plans' prices,
    prices added in Python.
    """
    now = now or timezone.now()
    shown = settings.DASHBOARD_FORECAST_ROWS if shown is None else shown
    currency = customer.currency
    balance = balance_of(customer) if balance is None else balance
    orders = _due_orders(renewal_batch.due_for_auto_renewal(now + dt.timedelta(days=days)).filter(customer=customer)
                         .order_by("expires_at", "pk"))
    pending_invoices = _pending_renewal_invoices(customer, {order.pk for order in orders})
    scheduled_prices = _scheduled_plan_prices(orders)
    try:
        tax = tax_for(customer) if orders else None
    except TaxNotConfigured:  # the renewal invoice will be refused too; forecast the amount without tax
        tax = NO_TAX
    table = RateTable(currencies if currencies is not None else enabled_currencies())
    autopay = card_auto_top_up_settings_for(customer)
    autopay_on = bool(autopay and autopay.enabled and autopay.method_id)
    today = provider_today(now)
    left_this_month = max(ZERO, autopay.monthly_limit - card_auto_top_up_month_used(customer=customer, today=today)) if autopay_on else ZERO
    cap_left: dict[tuple[int, int], Decimal] = {(today.year, today.month): left_this_month}

    forecast = RenewalForecast(rows=[], balance=balance, currency=currency, autopay_enabled=autopay_on,
                               autopay_left_this_month=left_this_month, count=len(orders))
    # Two walks in date order: `running`/`cap_left` replay the job (it leaves an unaffordable renewal
    # unpaid and keeps the balance for the next one); `topped_up`/`topped_cap` replay it after the
    # customer added the shortfall, so leftover balance is not counted against several renewals.
    # Hundreds of orders may be due: a row object only for the `shown` ones, the provider's month of a
    # renewal from the month bounds (not a time-zone conversion per order).
    running, topped_up, topped_cap = balance, balance, dict(cap_left)
    prices: dict[tuple, tuple] = {}  # many orders share a price: (amount, currency, in account currency, error)
    # The job renews an order ORDERS_RENEW_HOURS_BEFORE_EXPIRY before it expires (or at its next run).
    lead = dt.timedelta(hours=settings.ORDERS_RENEW_HOURS_BEFORE_EXPIRY)
    month_cap = autopay.monthly_limit if autopay_on else ZERO
    month_start = month_end = month = None
    for index, order in enumerate(orders):
        renews_at = order.expires_at - lead
        if renews_at < now:
            renews_at = now
        if order.pk in pending_invoices:
            amount, row_currency, in_account, error = _forecast_price(order, pending_invoices, scheduled_prices, tax,
                                                                      table, currency)
        else:
            key = (order.price, order.addons_price, order.currency, order.period_months, order.scheduled_plan_id)
            priced = prices.get(key)
            if priced is None:
                priced = prices[key] = _forecast_price(order, pending_invoices, scheduled_prices, tax, table, currency)
            amount, row_currency, in_account, error = priced
        row = None
        if index < shown:
            row = ForecastRow(order_id=order.pk, plan_name=order.plan_name, renews_at=renews_at, amount=amount,
                              currency=row_currency, amount_in_account_currency=in_account, error=error)
            forecast.rows.append(row)
        else:
            forecast.more_count += 1
        if error:
            forecast.uncovered += 1
            continue
        forecast.total += in_account
        if row is None:
            forecast.more_total += in_account
        if month is None or not month_start <= renews_at < month_end:
            month_start, month_end = _provider_month(renews_at)
            month = (month_start.year, month_start.month)
        covered_by, running = _cover(in_account, running, cap_left, month, month_cap)
        if row is not None:
            row.covered_by = covered_by
        if not covered_by:
            forecast.uncovered += 1
        covered, topped_up = _cover(in_account, topped_up, topped_cap, month, month_cap)
        if not covered:
            forecast.shortfall += in_account - max(topped_up, ZERO)
            topped_up = ZERO
    return forecast


def _provider_month(moment: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The start of the provider's calendar month of `moment` (core.calendar) and of the next month."""
    day = provider_today(moment)
    zone = timezone.get_default_timezone()
    following = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return (dt.datetime(day.year, day.month, 1, tzinfo=zone), dt.datetime(following.year, following.month, 1, tzinfo=zone))


def _cover(needed: Decimal, balance: Decimal, cap_left: dict, month: tuple[int, int], month_cap: Decimal) -> tuple[str, Decimal]:
    """How the renewal job pays `needed`: from the balance, else auto-payment tops up the missing part
    within what is left of that month's cap (updated in `cap_left`), else not at all ("").
    Returns (covered by, balance afterwards)."""
    if balance >= needed:
        return "balance", balance - needed
    missing = needed - max(balance, ZERO)
    left = cap_left.setdefault(month, month_cap)
    if missing <= left:
        cap_left[month] = left - missing
        return "autopay", ZERO
    return "", balance


def _forecast_price(order: "_DueOrder", pending_invoices: dict, scheduled_prices: dict, tax: TaxDecision,
                    table: RateTable, account_currency: str) -> tuple[Decimal, str, Decimal | None, str]:
    """(amount, its currency, the amount in the account currency or None, error): what the job's renewal
    invoice will ask for (`pricing.renewal_amount` + `billing.tax.invoice_totals`), or why it cannot be priced."""
    invoice = pending_invoices.get(order.pk)
    if invoice is not None:
        amount, currency = invoice["total"] - invoice["amount_paid"], invoice["currency"]
    else:
        currency = order.currency
        try:
            subtotal = pricing.renewal_amount(order, prices=scheduled_prices.get(order.scheduled_plan_id, []), table=table)
        except (ValidationError, RateError) as error:
            return ZERO, currency, None, error.messages[0]
        amount = invoice_totals(subtotal=subtotal, tax=tax, currency=currency).total
    try:
        quote = table.quote(currency, account_currency)
    except RateError as error:
        return amount, currency, None, error.messages[0]
    return amount, currency, (amount if currency == account_currency else quantize(amount * quote.rate, account_currency)), ""


def _scheduled_plan_prices(orders: list[_DueOrder]) -> dict[int, list[PlanPrice]]:
    """{plan id: its PlanPrice rows} for the orders' scheduled plans, one query (none without any)."""
    plan_ids = {order.scheduled_plan_id for order in orders} - {None}
    prices: dict[int, list[PlanPrice]] = {}
    if plan_ids:
        for price in PlanPrice.objects.filter(plan_id__in=plan_ids):
            prices.setdefault(price.plan_id, []).append(price)
    return prices


def _pending_renewal_invoices(customer: Customer, order_ids: set[int]) -> dict[int, dict]:
    """Open invoices of renewals already issued for each order's next period (the job pays those)."""
    if not order_ids:
        return {}
    invoice_of = {r["invoice_id"]: r["order_id"] for r in OrderRenewal.objects.filter(
        order__customer=customer, status=OrderRenewal.Status.PENDING, invoice_id__isnull=False,
        period=F("order__current_period") + 1).values("order_id", "invoice_id") if r["order_id"] in order_ids}
    if not invoice_of:
        return {}
    return {invoice_of[row["pk"]]: row for row in Invoice.objects.filter(pk__in=list(invoice_of), status__in=Invoice.OPEN_STATUSES)
            .values("pk", "total", "amount_paid", "currency")}
