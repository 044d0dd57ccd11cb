"""Dashboard and staff-report reads, composed from every app's public selectors and services.

The portal is the top layer, so it may import any app; nothing imports it. Each function runs a
fixed number of queries whatever the customer's history (pinned by portal/tests/test_dashboard.py).
"""
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count, DecimalField, F, Q, Sum
from django.db.models.functions import Coalesce, TruncMonth
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Customer, User
from accounts.roles import Area, role_allows
from core.calendar import provider_today
from billing.gateways.selectors import autopay_settings_for
from billing.gateways.services import autopay_month_used
from billing.models import Currency, Invoice, LedgerAccount, LedgerEntry
from billing.money import quantize
from billing.rates import RateError, RateTable, is_stale, rate_published_at
from billing.selectors import balance_of, enabled_currencies, equivalents, invoices_for
from billing.services.tax import TaxDecision, TaxNotConfigured, tax_for
from notifications.selectors import inbox_for
from orders.models import Order, OrderRenewal, PlanPrice
from orders.selectors import days_remaining, orders_for
from orders.services import renewal_batch
from tickets.selectors import tickets_for

ZERO = Decimal("0")
FORECAST_DAYS = 30
DASHBOARD_LIST_SIZE = 5
LIVE_SERVICE_STATUSES = (Order.Status.PENDING, Order.Status.ACTIVE, Order.Status.EXPIRED, Order.Status.SUSPENDED)


# --- renewal forecast ----------------------------------------------------------------------------

@dataclass
class ForecastRow:
    order_id: int
    plan_name: str
    renews_at: dt.datetime  # when the renewal job will first pick it up
    amount: Decimal  # what the renewal invoice will ask for (tax included), in `currency`
    currency: str
    amount_in_account_currency: Decimal | None  # None: no usable exchange rate
    covered_by: str = ""  # "balance", "autopay" or "" (not covered)
    error: str = ""


@dataclass
class RenewalForecast:
    rows: list[ForecastRow]  # the soonest `shown` renewals; every figure below covers all of them
    balance: Decimal
    currency: str
    autopay_enabled: bool
    autopay_left_this_month: Decimal
    count: int = 0  # renewals due in the window
    total: Decimal = ZERO  # in the account currency
    shortfall: Decimal = ZERO  # what the customer should add to cover every renewal
    uncovered: int = 0  # renewals neither the balance nor auto-payment covers (or without a price)
    more_count: int = 0  # due renewals beyond `rows`
    more_total: Decimal = ZERO  # their total in the account currency (those with a price)

    @property
    def all_covered(self) -> bool:
        return self.uncovered == 0


def _renewal_moment(expires_at: dt.datetime, now: dt.datetime) -> dt.datetime:
    """The job renews an order ORDERS_RENEW_HOURS_BEFORE_EXPIRY before it expires (or at its next run)."""
    return max(now, expires_at - dt.timedelta(hours=settings.ORDERS_RENEW_HOURS_BEFORE_EXPIRY))


def renewal_forecast(*, customer: Customer, now: dt.datetime | None = None, days: int = FORECAST_DAYS,
                     currencies: list[Currency] | None = None, balance: Decimal | None = None,
                     shown: int | None = None) -> RenewalForecast:
    """Which services the auto-renewal job will renew in the next `days` days, for how much, and
    whether the balance (then auto-payment within its monthly cap) covers each in turn.

    The orders are the job's own `due_for_auto_renewal()` query evaluated at the end of the window;
    the price is `orders.services.renewing.renewal_price()` quantized as the job stores it, plus the tax
    billing adds when it issues the invoice. A renewal invoice the job already issued (a pending
    renewal for the next period) is forecast at what it still asks for. Every due renewal is priced
    and counted (totals, coverage, shortfall), but only the soonest `shown` (DASHBOARD_FORECAST_ROWS)
    become rows. A fixed number of queries: one values() row per due order, prices added in Python.
    """
    now = now or timezone.now()
    shown = settings.DASHBOARD_FORECAST_ROWS if shown is None else shown
    currency = customer.currency
    balance = balance_of(customer) if balance is None else balance
    orders = list(
        renewal_batch.due_for_auto_renewal(now + dt.timedelta(days=days)).filter(customer=customer)
        .order_by("expires_at", "pk")
        .values("pk", "plan__name", "expires_at", "price", "currency", "period_months", "scheduled_plan_id")
    )
    pending_invoices = _pending_renewal_invoices(customer, {order["pk"] for order in orders})
    scheduled_prices = _scheduled_plan_prices({order["scheduled_plan_id"] for order in orders} - {None})
    try:
        tax = tax_for(customer) if orders else None
    except TaxNotConfigured:  # the renewal invoice will be refused too; forecast the amount without tax
        tax = TaxDecision(ZERO, "")
    table = RateTable(currencies if currencies is not None else enabled_currencies())
    autopay = autopay_settings_for(customer)
    autopay_on = bool(autopay and autopay.enabled and autopay.method_id)
    today = provider_today(now)
    left_this_month = max(ZERO, autopay.monthly_limit - autopay_month_used(customer=customer, today=today)) if autopay_on else ZERO
    cap_left: dict[tuple[int, int], Decimal] = {(today.year, today.month): left_this_month}

    forecast = RenewalForecast(rows=[], balance=balance, currency=currency, autopay_enabled=autopay_on,
                               autopay_left_this_month=left_this_month, count=len(orders))
    # Two walks in date order: `running`/`cap_left` replay the job (it leaves an unaffordable renewal
    # unpaid and keeps the balance for the next one); `topped_up`/`topped_cap` replay it after the
    # customer added the shortfall, so leftover balance is not counted against several renewals.
    running, topped_up, topped_cap = balance, balance, dict(cap_left)
    for index, order in enumerate(orders):
        row = ForecastRow(order_id=order["pk"], plan_name=order["plan__name"],
                          renews_at=_renewal_moment(order["expires_at"], now), amount=ZERO,
                          currency=order["currency"], amount_in_account_currency=None)
        if index < shown:
            forecast.rows.append(row)
        else:
            forecast.more_count += 1
        _forecast_price(row, order, pending_invoices, scheduled_prices, tax, table, currency)
        if row.error:
            forecast.uncovered += 1
            continue
        needed = row.amount_in_account_currency
        forecast.total += needed
        if index >= shown:
            forecast.more_total += needed
        month = provider_today(row.renews_at)
        month_cap = autopay.monthly_limit if autopay_on else ZERO
        row.covered_by, running = _cover(needed, running, cap_left, (month.year, month.month), month_cap)
        if not row.covered_by:
            forecast.uncovered += 1
        covered, topped_up = _cover(needed, topped_up, topped_cap, (month.year, month.month), month_cap)
        if not covered:
            forecast.shortfall += needed - max(topped_up, ZERO)
            topped_up = ZERO
    return forecast


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


def _forecast_price(row: ForecastRow, order: dict, pending_invoices: dict, scheduled_prices: dict, tax, table: RateTable,
                    account_currency: str) -> None:
    """Set the row's amount (its currency and the account currency's), or its error."""
    invoice = pending_invoices.get(order["pk"])
    if invoice is not None:
        row.amount, row.currency = invoice["total"] - invoice["amount_paid"], invoice["currency"]
    else:
        try:
            price = order["price"] if order["scheduled_plan_id"] is None else _scheduled_price(order, scheduled_prices, table)
        except (ValidationError, RateError) as error:
            row.error = error.messages[0]
            return
        subtotal = quantize(price, order["currency"])  # as the job stores it
        row.amount = subtotal + quantize(subtotal * tax.percent / 100, order["currency"])  # as invoice_issue adds it
    try:
        quote = table.quote(row.currency, account_currency)
    except RateError as error:
        row.error = error.messages[0]
        return
    row.amount_in_account_currency = row.amount if row.currency == account_currency else quantize(row.amount * quote.rate, account_currency)


def _scheduled_plan_prices(plan_ids: set[int]) -> dict[int, tuple[str, dict[tuple[int, str], Decimal]]]:
    """{plan id: (base currency, {(period months, currency): amount})} for the scheduled plans, one query."""
    if not plan_ids:
        return {}
    prices: dict[int, tuple[str, dict]] = {}
    for row in PlanPrice.objects.filter(plan_id__in=plan_ids).values("plan_id", "plan__base_currency", "period_months",
                                                                       "currency", "amount"):
        prices.setdefault(row["plan_id"], (row["plan__base_currency"], {}))[1][(row["period_months"], row["currency"])] = row["amount"]
    return prices


def _scheduled_price(order: dict, scheduled_prices: dict, table: RateTable) -> Decimal:
    """`orders.pricing.plan_price()` of the scheduled plan (what `renewal_price()` charges), converting
    with the rate table already loaded instead of a query per order."""
    base_currency, by_key = scheduled_prices.get(order["scheduled_plan_id"], ("", {}))
    period, currency = order["period_months"], order["currency"]
    if (period, currency) in by_key:
        return by_key[(period, currency)]
    if (period, base_currency) not in by_key:
        raise ValidationError(_("This plan is not sold for a %(months)s-month period.") % {"months": period}, code="no_price")
    return quantize(by_key[(period, base_currency)] * table.quote(base_currency, currency).rate, currency)


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


# --- spending chart ------------------------------------------------------------------------------

@dataclass
class MonthAmount:
    month: dt.date
    amount: Decimal


@dataclass
class SpendingSeries:
    currency: str
    months: list[MonthAmount] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((m.amount for m in self.months), ZERO)


def last_months(today: dt.date, count: int = 12) -> list[dt.date]:
    """First days of the last `count` months, oldest first, the current month last."""
    year, month = today.year, today.month
    firsts = []
    for _ in range(count):
        firsts.append(dt.date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return firsts[::-1]


def spending_by_month(*, customer: Customer, now: dt.datetime | None = None, months: int = 12) -> list[SpendingSeries]:
    """What the customer paid for services per calendar month (local time), one series per invoice
    currency, the account currency first. Spending is the total of paid service invoices (order,
    renewal, upgrade — not top-ups) by the month they were paid; two queries."""
    now = now or timezone.now()
    firsts = last_months(timezone.localdate(now), months)
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(dt.datetime.combine(firsts[0], dt.time.min), tz)
    rows = (
        invoices_for(customer).exclude(kind=Invoice.Kind.ADVANCE)
        .filter(status__in=[Invoice.Status.PAID, Invoice.Status.REFUNDED], paid_at__gte=start)
        .annotate(month=TruncMonth("paid_at", tzinfo=tz)).values("month", "currency")
        .annotate(amount=Sum("total")).order_by()
    )
    sums: dict[str, dict[dt.date, Decimal]] = {}
    for row in rows:
        month = row["month"].date() if isinstance(row["month"], dt.datetime) else row["month"]
        sums.setdefault(row["currency"], {})[month] = row["amount"]
    currencies = sorted(sums, key=lambda code: (code != customer.currency, code)) or [customer.currency]
    return [SpendingSeries(currency=code, months=[MonthAmount(m, sums.get(code, {}).get(m, ZERO)) for m in firsts])
            for code in currencies]


# --- the dashboard ---------------------------------------------------------------------------------

def dashboard_data(*, customer: Customer, user: User, now: dt.datetime | None = None) -> dict:
    """Everything the home page shows, only the cards the user's role allows."""
    now = now or timezone.now()
    can = {area: role_allows(user, area) for area in (Area.BILLING, Area.SERVICES, Area.TICKETS, Area.SETTINGS)}
    data: dict = {"can": can, "now": now}
    if can[Area.BILLING]:
        currencies = enabled_currencies()
        balance = balance_of(customer)
        data["balance"] = balance
        data["equivalents"] = equivalents(balance, customer.currency, currencies)
        unpaid = invoices_for(customer).filter(status__in=Invoice.OPEN_STATUSES)
        data["unpaid_invoices"] = list(unpaid.order_by("issued_at", "pk")[:DASHBOARD_LIST_SIZE])
        data["unpaid_summary"] = list(unpaid.values("currency").annotate(
            count=Count("pk"), due=Sum(F("total") - F("amount_paid"))).order_by("currency"))
        data["spending"] = spending_by_month(customer=customer, now=now)
        data["forecast"] = renewal_forecast(customer=customer, now=now, currencies=currencies, balance=balance)
    if can[Area.SERVICES]:
        live = orders_for(customer).filter(status__in=LIVE_SERVICE_STATUSES)
        services = list(live.select_related("plan").order_by(F("expires_at").asc(nulls_last=True), "pk")[:DASHBOARD_LIST_SIZE])
        for order in services:
            order.days_left = days_remaining(order, now)
        data["services"] = services
        data["services_count"] = live.count()
    if can[Area.TICKETS]:
        open_tickets = tickets_for(customer=customer, status="open")
        data["tickets"] = list(open_tickets.select_related("department")[:DASHBOARD_LIST_SIZE])
    data["notifications"] = list(inbox_for(customer, user=user).order_by("-created_at", "-pk")[:DASHBOARD_LIST_SIZE])
    return data


def attach_owners(customers) -> None:
    """Customer.__str__ names the owner login (accounts.selectors.customer_owner caches it on the
    instance): load the owners of a whole page of customers in one query instead of one per row."""
    by_pk: dict[int, list[Customer]] = {}
    for customer in customers:
        if customer is not None and getattr(customer, "_owner_cache", None) is None:
            by_pk.setdefault(customer.pk, []).append(customer)
    if not by_pk:
        return
    # Highest pk first so the lowest (the first owner, as customer_owner picks) is assigned last.
    for owner in User.objects.filter(customer_id__in=list(by_pk), role=User.Role.OWNER).order_by("customer_id", "-pk"):
        for customer in by_pk[owner.customer_id]:
            customer._owner_cache = owner



# --- staff reports -------------------------------------------------------------------------------

AGE_BUCKETS = ((0, 30), (31, 60), (61, 90), (91, None))


def revenue_by_month(*, now: dt.datetime | None = None, months: int = 12) -> dict:
    """Net revenue (the ledger's revenue accounts: invoices recognised minus refunds) per month and
    currency, for the last `months` months. {"months": [...], "rows": [{"currency", "amounts", "total"}],
    "by_month": [{"month", "amounts": [{"currency", "amount"}]}]} (by_month: one row per month, so the
    table grows downwards instead of 14 columns wide)."""
    now = now or timezone.now()
    firsts = last_months(timezone.localdate(now), months)
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(dt.datetime.combine(firsts[0], dt.time.min), tz)
    sums: dict[str, dict[dt.date, Decimal]] = {}
    for row in (LedgerEntry.objects.filter(account__kind=LedgerAccount.Kind.REVENUE, transaction__created_at__gte=start)
                .annotate(month=TruncMonth("transaction__created_at", tzinfo=tz)).values("month", "currency")
                .annotate(amount=Sum("amount")).order_by()):
        sums.setdefault(row["currency"], {})[row["month"].date()] = row["amount"]
    rows = []
    for code in sorted(sums):
        amounts = [sums[code].get(m, ZERO) for m in firsts]
        rows.append({"currency": code, "amounts": amounts, "total": sum(amounts, ZERO)})
    by_month = [{"month": month, "amounts": [{"currency": row["currency"], "amount": row["amounts"][i]} for row in rows]}
                for i, month in enumerate(firsts)]
    return {"months": firsts, "rows": rows, "by_month": by_month}


def receivables(*, now: dt.datetime | None = None) -> dict:
    """Unpaid invoices (what customers owe) per currency and age bucket, plus the oldest ones."""
    now = now or timezone.now()
    due = F("total") - F("amount_paid")
    aggregates = {}
    for low, high in AGE_BUCKETS:
        condition = Q(issued_at__lte=now - dt.timedelta(days=low))
        if high is not None:
            condition &= Q(issued_at__gt=now - dt.timedelta(days=high + 1))
        aggregates[f"b{low}"] = Coalesce(Sum(due, filter=condition), ZERO, output_field=DecimalField())
    open_invoices = Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES).exclude(kind=Invoice.Kind.ADVANCE)
    rows = []
    for row in open_invoices.values("currency").annotate(count=Count("pk"), due_total=Sum(due), **aggregates).order_by("currency"):
        rows.append({"currency": row["currency"], "count": row["count"], "total": row["due_total"],
                     "buckets": [row[f"b{low}"] for low, _high in AGE_BUCKETS]})
    oldest = list(open_invoices.select_related("customer").order_by("issued_at", "pk")[:20])
    for invoice in oldest:
        invoice.age_days = (now - invoice.issued_at).days
    return {"buckets": AGE_BUCKETS, "rows": rows, "oldest": oldest}


REPORT_LIST_SIZE = 50


def services_expiring(*, now: dt.datetime | None = None) -> dict:
    """Active services expiring within 7 and 30 days (counts) and the soonest REPORT_LIST_SIZE of them."""
    now = now or timezone.now()
    window = Order.objects.filter(status=Order.Status.ACTIVE, expires_at__gte=now, expires_at__lt=now + dt.timedelta(days=30))
    counts = window.aggregate(within_7=Count("pk", filter=Q(expires_at__lt=now + dt.timedelta(days=7))),
                              within_30=Count("pk"))
    soonest = list(window.select_related("customer", "plan").order_by("expires_at", "pk")[:REPORT_LIST_SIZE])
    return {**counts, "soonest": soonest}


def customers_awaiting_verification() -> dict:
    pending = Customer.objects.filter(verification_status=Customer.Verification.PENDING)
    return {"count": pending.count(), "oldest": list(pending.order_by("pk")[:REPORT_LIST_SIZE])}


def rate_freshness(*, now: dt.datetime | None = None) -> list[dict]:
    """Each rate's age counted from its publication (the feed's own date), as staleness is."""
    now = now or timezone.now()
    rows = []
    for currency in Currency.objects.order_by("position", "code"):
        published = rate_published_at(currency)
        rows.append({"currency": currency, "stale": is_stale(currency, now), "age": (now - published) if published else None})
    return rows


def staff_reports(*, now: dt.datetime | None = None) -> dict:
    """The staff reports page; a fixed number of queries (lists are capped, totals are aggregates)."""
    now = now or timezone.now()
    data = {
        "now": now,
        "revenue": revenue_by_month(now=now),
        "receivables": receivables(now=now),
        "expiring": services_expiring(now=now),
        "awaiting_verification": customers_awaiting_verification(),
        "rates": rate_freshness(now=now),
    }
    attach_owners([*(i.customer for i in data["receivables"]["oldest"]), *(o.customer for o in data["expiring"]["soonest"]),
                   *data["awaiting_verification"]["oldest"]])
    return data
