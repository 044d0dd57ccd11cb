"""Dashboard and staff-report reads, composed from every app's public selectors and services.

The portal is the top layer, so it may import any app; nothing imports it. Each function runs a
fixed number of queries whatever the customer's history (pinned by portal/tests/test_dashboard.py).
"""
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, DecimalField, F, Q, Subquery, Sum
from django.db.models.functions import Coalesce, TruncMonth
from django.utils import timezone

from accounts.models import Customer, User
from accounts.roles import Area, role_allows
from accounts.selectors import customer_owners
from billing.models import Currency, Invoice, LedgerAccount, LedgerEntry
from billing.rates import is_stale, rate_published_at
from billing.selectors import balance_of, enabled_currencies, equivalents, invoices_for
from core.compiled import ROW_COUNT, STAND_IN, CompiledQuery
from notifications.selectors import latest_notifications
from orders.models import Order
from orders.selectors import days_remaining, orders_for, renewal_forecast
from tickets.selectors import tickets_for

ZERO = Decimal("0")
DASHBOARD_LIST_SIZE = 5
LIVE_SERVICE_STATUSES = (Order.Status.PENDING, Order.Status.ACTIVE, Order.Status.EXPIRED, Order.Status.SUSPENDED)


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

# The cards' reads have a fixed shape: each is built and compiled by the ORM once per process (core.compiled;
# ~0.3-0.6 ms of CPU each per request otherwise).
_UNPAID_INVOICES = CompiledQuery(lambda customer_id: invoices_for(Customer(pk=customer_id)).filter(
    status__in=Invoice.OPEN_STATUSES).only("number", "status", "currency", "total", "amount_paid", "issued_at")
    .order_by("issued_at", "pk")[:DASHBOARD_LIST_SIZE], customer_id=STAND_IN)  # what the card prints
_UNPAID_SUMMARY = CompiledQuery(lambda customer_id: invoices_for(Customer(pk=customer_id)).filter(
    status__in=Invoice.OPEN_STATUSES).values_list("currency").annotate(count=Count("pk"), due=Sum(F("total") - F("amount_paid")))
    .order_by("currency").values_list("currency", "count", "due"), customer_id=STAND_IN)


def _live_services(customer_id: int):
    return orders_for(Customer(pk=customer_id)).filter(status__in=LIVE_SERVICE_STATUSES)


# The soonest-expiring live services, each row carrying how many there are: an uncorrelated subquery PostgreSQL
# counts once (one round trip for both; a window count made it join and sort every live service, 6.7 ms).
_SERVICES = CompiledQuery(lambda customer_id: _live_services(customer_id).select_related("plan").only(  # what the card prints
    "status", "provisioning", "cancel_at_period_end", "ip", "expires_at", "plan__name", "plan__name_ru")
    .annotate(live_count=Subquery(_live_services(customer_id).order_by().annotate(n=ROW_COUNT).values("n")))
    .order_by(F("expires_at").asc(nulls_last=True), "pk")[:DASHBOARD_LIST_SIZE], customer_id=STAND_IN)
_TICKETS = CompiledQuery(lambda customer_id: tickets_for(customer=Customer(pk=customer_id), status="open")
                         .select_related(None)[:DASHBOARD_LIST_SIZE], customer_id=STAND_IN)  # subject and status: no joins


def dashboard_data(*, customer: Customer, user: User, now: dt.datetime | None = None) -> dict:
    """Everything the home page shows, only the cards the user's role allows (the spending chart: the view's
    `spending_charts`, kept as HTML)."""
    now = now or timezone.now()
    can = {area: role_allows(user, area) for area in (Area.BILLING, Area.SERVICES, Area.TICKETS, Area.SETTINGS)}
    data: dict = {"can": can, "now": now}
    if can[Area.BILLING]:
        currencies = enabled_currencies()
        balance = balance_of(customer)
        data["balance"] = balance
        data["equivalents"] = equivalents(balance, customer.currency, currencies)
        data["unpaid_invoices"] = _UNPAID_INVOICES(customer_id=customer.pk)
        data["unpaid_summary"] = [{"currency": code, "count": count, "due": due}
                                  for code, count, due in _UNPAID_SUMMARY(customer_id=customer.pk)]
        data["forecast"] = renewal_forecast(customer=customer, now=now, currencies=currencies, balance=balance)
    if can[Area.SERVICES]:
        services = _SERVICES(customer_id=customer.pk)
        for order in services:
            order.days_left = days_remaining(order, now)
        data["services"] = services
        data["services_count"] = services[0].live_count if services else 0
    if can[Area.TICKETS]:
        data["tickets"] = _TICKETS(customer_id=customer.pk)
    data["notifications"] = latest_notifications(customer, user=user, limit=DASHBOARD_LIST_SIZE)
    return data



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
    customer_owners(customers=[*(i.customer for i in data["receivables"]["oldest"]),
                               *(o.customer for o in data["expiring"]["soonest"]),
                               *data["awaiting_verification"]["oldest"]])
    return data
