"""Reads for orders, always scoped to a customer (another customer's order is a 404), and the
renewal forecasts (dashboard, auto-payment's next month) priced by the renewal job's own functions."""
import datetime as dt
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Case, CharField, F, Func, IntegerField, Q, QuerySet, Value, When
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import Customer
from billing.gateways.selectors import card_auto_top_up_month_used, card_auto_top_up_settings_for
from billing.models import Currency, Invoice
from billing.money import quantize
from billing.rates import RateError, RateTable
from billing.selectors import balance_of, enabled_currencies, tax_for
from billing.tax import NO_TAX, TaxDecision, TaxNotConfigured, invoice_totals
from core.calendar import provider_today
from core.compiled import STAND_IN, STAND_IN_2, STAND_IN_TIME, CompiledQuery, CompiledRows, execute_prepared

from . import pricing
from .services import renewal_batch
from .models import Order, OrderRenewal, Plan, PlanAddon, PlanPrice, ProductType

SORTS = {
    "created": "created_at",
    "expires": "expires_at",
    "status": "status_rank",
    "cost": "period_cost",
}
ZERO = Decimal("0")
FORECAST_DAYS = 30
STATUS_RANK = [Order.Status.ACTIVE, Order.Status.PENDING, Order.Status.EXPIRED, Order.Status.SUSPENDED,
               Order.Status.CANCELLED, Order.Status.TERMINATED]


def orders_for(customer: Customer) -> QuerySet[Order]:
    return Order.objects.filter(customer=customer)


def order_get(*, customer: Customer, order_id: int, with_vm: bool = False, plan_locations: bool = True) -> Order:
    """The customer's order (404 otherwise); `with_vm` joins its VM (the order page asks `order.vm`);
    `plan_locations=False` leaves out the plan's locations (panels that do not show the plan). Its
    `customer` is the given instance (not joined again)."""
    if plan_locations:
        return _with_customer(get_object_or_404(_orders_to_get(with_vm, True), customer=customer, pk=order_id), customer)
    found = _ORDER_GET[with_vm](customer_id=customer.pk, order_id=int(order_id))
    if not found:
        raise Http404("No Order matches the given query.")
    return _with_customer(found[0], customer)


def _orders_to_get(with_vm: bool, plan_locations: bool) -> QuerySet[Order]:
    orders = Order.objects.select_related("plan__product_type", "scheduled_plan")
    if with_vm:
        orders = orders.select_related("vm")
    if plan_locations:
        orders = orders.prefetch_related("plan__locations")
    return orders


# Without the plan's locations (a prefetch) order_get is one query of a fixed shape: compiled once per
# `with_vm` (core.compiled; building it cost the ORM ~1 ms on every panel's request).
_ORDER_GET = {with_vm: CompiledQuery(lambda customer_id, order_id, with_vm=with_vm: _orders_to_get(with_vm, False).filter(
    customer_id=customer_id, pk=order_id).order_by(), customer_id=STAND_IN, order_id=STAND_IN_2) for with_vm in (False, True)}


def _with_customer(order: Order, customer: Customer) -> Order:
    Order.customer.field.set_cached_value(order, customer)
    return order


# What the order page reads of the order's plan (its specs) and VM (the panels' condition, order_setup).
PAGE_PLAN_FIELDS = ("name", "name_ru", "cpu_cores", "cpu_model", "ram_gb", "disk_gb", "disk_type", "traffic_tb", "port_mbps")
PAGE_VM_FIELDS = ("order", "state", "initial_password", "deleted_at")


def order_page(*, customer: Customer, order_id: int) -> Order:
    """The order page's order: `order_get(with_vm=True)` that reads in the same query, instead of a query
    each, its plan's location names (`location_names`, as `plan.locations` orders them), whether the plan
    offers add-ons (`plan_offers_addons`) and its latest create job's state and attempts (`setup_job_state`,
    `setup_job_attempts`: None without one), which `order_setup` and the page use. Of the plan, the
    scheduled plan and the VM it reads what the page prints (PAGE_PLAN_FIELDS, PAGE_VM_FIELDS). Compiled
    once (core.compiled)."""
    found = _ORDER_PAGE(customer_id=customer.pk, order_id=order_id)
    if not found:
        raise Http404("No Order matches the given query.")
    return _with_customer(found[0], customer)


def _order_page_query(customer_id: int, order_id: int) -> QuerySet[Order]:
    from django.contrib.postgres.expressions import ArraySubquery
    from django.db.models import Exists, OuterRef, Subquery

    from .models import Location, ProvisioningJob

    jobs = ProvisioningJob.objects.filter(order=OuterRef("pk"), action=ProvisioningJob.Action.CREATE).order_by("-pk")
    return Order.objects.select_related("plan", "scheduled_plan", "vm").only(
        *(field.name for field in Order._meta.concrete_fields), *(f"plan__{name}" for name in PAGE_PLAN_FIELDS),
        "scheduled_plan__name", "scheduled_plan__name_ru", *(f"vm__{name}" for name in PAGE_VM_FIELDS)).annotate(
        location_names=ArraySubquery(Location.objects.filter(plans=OuterRef("plan_id")).order_by(
            *Location._meta.ordering).values("name")),
        plan_offers_addons=Exists(PlanAddon.objects.filter(plan_id=OuterRef("plan_id"), is_active=True)),
        setup_job_state=Subquery(jobs.values("state")[:1]), setup_job_attempts=Subquery(jobs.values("attempts")[:1]),
    ).filter(customer_id=customer_id, pk=order_id)


_ORDER_PAGE = CompiledQuery(_order_page_query, customer_id=STAND_IN, order_id=STAND_IN_2)


@dataclass(frozen=True)
class OrderListParams:
    query: str = ""
    status: str = ""
    sort: str = "created"
    descending: bool = True


def order_list(*, customer: Customer, params: OrderListParams) -> QuerySet[Order]:
    """The orders table: search by ID, plan or IP; filter by status; sort by created/expiry/status/cost
    (a period's plan price plus add-ons). One query for the page (plan joined) and one for its
    add-ons, whatever the number of orders."""
    from django.db.models import Prefetch

    from .models import OrderAddon

    orders = orders_for(customer).select_related("plan").annotate(
        status_rank=Case(*[When(status=s, then=Value(i)) for i, s in enumerate(STATUS_RANK)], output_field=IntegerField()),
        period_cost=F("price") + F("addons_price"),
    ).prefetch_related(Prefetch("addons", queryset=OrderAddon.objects.select_related("addon").order_by("addon__sort_order", "addon_id")))
    raw = params.query.strip()
    query = raw.lstrip("#")
    if raw.startswith("#") and query.isdigit():  # "#123" is an order number, nothing else
        orders = orders.filter(pk=int(query))
    elif query:
        # host() prints an inet without its /32 mask.
        orders = orders.annotate(ip_text=Func(F("ip"), function="HOST", output_field=CharField()))
        condition = Q(plan__name__icontains=query) | Q(ip_text__contains=query)
        if query.isdigit():
            condition |= Q(pk=int(query))
        orders = orders.filter(condition)
    if params.status in Order.Status.values:
        orders = orders.filter(status=params.status)
    field = SORTS.get(params.sort, "created_at")
    if field == "expires_at":  # the only nullable sort key: pending orders have no expiry yet
        ordering = F(field).desc(nulls_last=True) if params.descending else F(field).asc(nulls_last=True)
    else:  # plain ASC/DESC, so the default sort walks the (customer, -created_at) index instead of sorting
        ordering = F(field).desc() if params.descending else F(field).asc()
    return orders.order_by(ordering, "-pk")


def order_table(*, customer: Customer, params: OrderListParams) -> QuerySet[Order]:
    """`order_list` as the orders page reads it (`order_table_values`): `has_addons` instead of the add-ons' prefetch
    (`table_addon_labels` reads them for the page's orders that hold any)."""
    from django.db.models import Exists, OuterRef

    from .models import OrderAddon

    return order_list(customer=customer, params=params).prefetch_related(None).annotate(
        has_addons=Exists(OrderAddon.objects.filter(order=OuterRef("pk"))))


# What the orders table prints of an order and its plan as a row (a dict): `order_table_rows` reads them
# through a compiled query, a search through `order_table_values` (the ORM). `period_cost` is a period's
# price plus add-ons (`Order.period_total`), `has_addons` whether `table_addon_labels` has any to read.
TABLE_ROW_FIELDS = ("pk", "plan_id", "period_months", "currency", "status", "provisioning", "ip", "expires_at",
                    "cancel_at_period_end", "invoice_id", "paid_at", "plan__name", "plan__name_ru", "period_cost", "has_addons")


def order_table_values(*, customer: Customer, params: OrderListParams) -> QuerySet:
    """`order_table` as rows: dicts of `TABLE_ROW_FIELDS` (no model instances)."""
    return order_table(customer=customer, params=params).values(*TABLE_ROW_FIELDS)


_TABLE_QUERIES: dict[tuple[str, bool, str], CompiledQuery] = {}


def order_table_rows(*, customer: Customer, params: OrderListParams) -> CompiledRows:
    """`order_table_values`' rows without a search (`params.query` is ignored) for a Paginator whose count is set:
    compiled once per sort, direction and status filter (core.compiled)."""
    status = params.status if params.status in Order.Status.values else ""
    key = (SORTS.get(params.sort, "created_at"), params.descending, status)
    query = _TABLE_QUERIES.get(key)
    if query is None:
        shape = OrderListParams(status=status, sort=params.sort, descending=params.descending)
        query = _TABLE_QUERIES[key] = CompiledQuery(
            lambda customer_id: order_table_values(customer=Customer(pk=customer_id), params=shape), customer_id=STAND_IN)
    return CompiledRows(query, customer_id=customer.pk)


def table_addon_labels(order_ids: list[int]) -> dict[int, list[str]]:
    """The add-ons' labels ("Extra RAM: 4 GB", `OrderAddon.label`) of those orders, in `order_list`'s prefetch order,
    by order id: one query of plain rows (none without ids), each label made once per add-on and quantity."""
    from .addons import describe
    from .models import OrderAddon

    if not order_ids:
        return {}
    labels: dict[int, list[str]] = {}
    made: dict[tuple[int, int], str] = {}
    addons: dict[int, PlanAddon] = {}
    for order_id, addon_id, quantity, kind, name, name_ru, step in OrderAddon.objects.filter(order_id__in=order_ids).order_by(
            "addon__sort_order", "addon_id").values_list("order_id", "addon_id", "quantity", "addon__kind", "addon__name",
                                                         "addon__name_ru", "addon__step"):
        label = made.get((addon_id, quantity))
        if label is None:
            addon = addons.get(addon_id)
            if addon is None:
                addon = addons[addon_id] = PlanAddon(pk=addon_id, kind=kind, name=name, name_ru=name_ru, step=step)
            label = made[addon_id, quantity] = describe(addon, quantity)
        labels.setdefault(order_id, []).append(label)
    return labels


def status_counts(*, customer: Customer) -> dict[str, int]:
    return dict(_STATUS_COUNTS(customer_id=customer.pk))


def _status_counts_query(customer_id: int):
    from django.db.models import Count

    return orders_for(Customer(pk=customer_id)).values_list("status").annotate(n=Count("pk")).values_list("status", "n")


_STATUS_COUNTS = CompiledQuery(_status_counts_query, customer_id=STAND_IN)  # status_counts' query (core.compiled)


def renewable_orders(*, customer: Customer, ids: list[int]) -> QuerySet[Order]:
    return orders_for(customer).filter(pk__in=ids, status__in=[Order.Status.ACTIVE, Order.Status.EXPIRED, Order.Status.SUSPENDED]).select_related("plan").order_by("pk")


def catalogue() -> list[ProductType]:
    """Orderable product types with their active plans, prices and locations (a fixed number of queries)."""
    from django.db.models import Prefetch

    plans = Plan.objects.filter(is_active=True).prefetch_related("prices", "locations").order_by("sort_order", "pk")
    return list(ProductType.objects.filter(is_active=True, plans__is_active=True).distinct()
                .prefetch_related(Prefetch("plans", queryset=plans)).order_by("sort_order", "name"))


def plan_for_order(*, plan_id: int) -> Plan:
    from django.db.models import Prefetch

    plan = Plan.objects.select_related("product_type").prefetch_related(
        "prices", "locations", "product_type__os_images",
        Prefetch("addons", queryset=PlanAddon.objects.filter(is_active=True).prefetch_related("prices").order_by("sort_order", "pk")),
    ).filter(
        pk=plan_id, is_active=True, product_type__is_active=True).first()
    if plan is None:
        raise Http404
    return plan


def order_invoices(*, order: Order):
    """The order's invoices, found by billing's `reference` ("order:<id>" and "order:<id>:…")."""
    from billing.models import Invoice

    ref = order.reference
    return Invoice.objects.filter(customer_id=order.customer_id).filter(
        Q(reference=ref) | Q(reference__startswith=ref + ":")).order_by("-issued_at", "-pk")


def order_events(*, order: Order):
    return order.events.select_related("actor").order_by("-created_at", "-pk")


# The order page's latest events and invoices: those querysets compiled once (core.compiled).
_PAGE_EVENTS = CompiledQuery(lambda order_id: order_events(order=Order(pk=order_id))[:50], order_id=STAND_IN)
_PAGE_INVOICES = CompiledQuery(lambda customer_id, order_id: order_invoices(order=Order(pk=order_id, customer_id=customer_id))[:20],
                               customer_id=STAND_IN, order_id=STAND_IN_2)


def page_events(*, order: Order) -> list:
    """`order_events(order=order)[:50]` as a list."""
    return _PAGE_EVENTS(order_id=order.pk)


def page_invoices(*, order: Order) -> list:
    """`order_invoices(order=order)[:20]` as a list."""
    return _PAGE_INVOICES(customer_id=order.customer_id, order_id=order.pk)


def days_remaining(order: Order, now=None) -> int | None:
    return days_left(order.expires_at, order.status, timezone.localtime(now or timezone.now()).date())


def days_left(expires_at: dt.datetime | None, status: str, today: dt.date, zone=None) -> int | None:
    """`days_remaining` of an order's expiry and status (a row's), `today` in local time (`zone`: the current
    time zone, read once by the caller of many)."""
    if expires_at is None or status in (Order.Status.CANCELLED, Order.Status.TERMINATED):
        return None
    return max(0, (timezone.localtime(expires_at, zone).date() - today).days)


def order_setup(*, order: Order) -> dict:
    """The order page's provisioning panel: the create job's progress (no error text: errors are for
    staff), and whether a root password is waiting to be shown once."""
    from .models import ProvisioningJob, VirtualMachine

    if hasattr(order, "setup_job_state"):  # read with the order (order_page)
        state, attempts = order.setup_job_state, order.setup_job_attempts
    else:
        state, attempts = ProvisioningJob.objects.filter(order=order, action=ProvisioningJob.Action.CREATE).values_list(
            "state", "attempts").first() or (None, None)
    if Order.vm.is_cached(order):  # joined (order_get(with_vm=True)): an order has one VM
        vm = getattr(order, "vm", None)
        vm = vm if vm is not None and vm.deleted_at is None else None
    else:
        vm = VirtualMachine.objects.filter(order=order, deleted_at__isnull=True).only("initial_password", "state").first()
    setting_up = order.status == Order.Status.PENDING and order.provisioning in (
        Order.Provisioning.IN_PROGRESS, Order.Provisioning.FAILED)
    step = 0
    if state is not None:
        step = {ProvisioningJob.State.QUEUED: 1, ProvisioningJob.State.RUNNING: 2, ProvisioningJob.State.DONE: 3}.get(state, 1)
    return {
        "setting_up": setting_up, "failed": order.provisioning == Order.Provisioning.FAILED,
        "step": step, "percent": {0: 5, 1: 25, 2: 60, 3: 100}[step],
        "delayed": state is not None and attempts > 1 and state != ProvisioningJob.State.DONE,
        # Not while a reinstall is still building the system the new password belongs to.
        "password_waiting": bool(vm and vm.initial_password and order.status == Order.Status.ACTIVE
                                 and not ProvisioningJob.objects.filter(
                                     order=order, action=ProvisioningJob.Action.REINSTALL,
                                     state__in=(ProvisioningJob.State.QUEUED, ProvisioningJob.State.RUNNING)).exists()),
        "vm_state": vm.state if vm else "",
    }


def renewals_due_next_month(*, customer: Customer, now=None):
    """What the auto-renewal job will charge this customer within the next month for renewals that no
    open invoice asks for yet, in the account currency: the job's `pricing.renewal_amount()` plus the
    tax billing adds (`invoice_totals`). Registered with `billing.hooks.register_upcoming_charges`, so
    auto-payment tops up for the next month of services (the renewal invoices already issued are
    counted by billing itself)."""
    now = now or timezone.now()
    orders = list(renewal_batch.due_for_auto_renewal(pricing.add_months(now, 1)).filter(customer=customer)
                  .select_related("scheduled_plan").order_by("pk"))
    if not orders:
        return Decimal("0")
    open_invoices = set(Invoice.objects.filter(customer=customer, kind=Invoice.Kind.RENEWAL, status__in=Invoice.OPEN_STATUSES)
                        .values_list("pk", flat=True))
    invoiced = {(renewal.order_id, renewal.period) for renewal in
                OrderRenewal.objects.filter(order__in=orders, status=OrderRenewal.Status.PENDING, invoice_id__in=open_invoices)}
    tax = tax_for(customer)
    table = RateTable()
    total = Decimal("0")
    for order in orders:
        if (order.pk, order.current_period + 1) in invoiced:
            continue
        try:
            amount = invoice_totals(subtotal=pricing.renewal_amount(order), tax=tax, currency=order.currency).total
            if order.currency != customer.currency:
                amount = quantize(amount * table.quote(order.currency, customer.currency).rate, customer.currency)
        except (ValidationError, RateError):  # no price or rate now: the job will report it; nothing to add
            continue
        total += amount
    return total


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


# What the forecast and `pricing.renewal_amount` read of a due order, plus its pending renewal invoice.
# A heavy customer has hundreds due but few distinct prices: one statement gives each distinct price
# key (what the price depends on) and provider month with the positions of its orders in the job's
# order, then the first `shown` orders; Python prices each key once.
_DUE_FIELDS = ("id", "expires_at", "current_period", "currency", "price", "addons_price", "period_months",
               "scheduled_plan_id", "plan_id")
_DUE_ORDERS = CompiledQuery(
    lambda customer_id, horizon: renewal_batch.due_for_auto_renewal(
        horizon - dt.timedelta(hours=settings.ORDERS_RENEW_HOURS_BEFORE_EXPIRY), customer_id=customer_id)
    .order_by().values_list(*_DUE_FIELDS),  # unordered: the statement numbers them in the job's order itself
    customer_id=STAND_IN, horizon=STAND_IN_TIME)
_FORECAST_SQL: dict[str, str] = {}
_KEY_ROW, _SHOWN_ROW = 0, 1


def _forecast_sql(due_sql: str) -> str:
    """The due orders (the job's query, compiled once) numbered in the job's order, with their pending
    renewal invoice's open amount and their renewal moment (the job renews `lead` before expiry, or at
    its next run). Rows: each price key and provider month (`width_bucket` over the months' starts) with
    its orders' positions (grouped by hashing, not sorting; a pending invoice's amount is part of the key),
    then the first `shown` orders. A prepared statement: the plans are joined to the few keys and shown
    rows, not to every order, and the pending renewals are read once, so its generic plan (which expects
    one due order) loops over nothing per order."""
    sql = _FORECAST_SQL.get(due_sql)
    if sql is None:
        q = connection.ops.quote_name
        renewal, invoice, plan = q(OrderRenewal._meta.db_table), q(Invoice._meta.db_table), q(Plan._meta.db_table)
        pending = connection.ops.compose_sql(
            f"r.{q('status')} = %s AND i.{q('status')} IN %s",
            [OrderRenewal.Status.PENDING.value, tuple(status.value for status in Invoice.OPEN_STATUSES)]).replace("%", "%%")
        key = "inv_due, inv_currency, currency, price, addons_price, period_months, scheduled_plan_id"
        sql = _FORECAST_SQL[due_sql] = (
            f"WITH due ({', '.join(_DUE_FIELDS)}) AS ({due_sql}), "
            f"pending AS MATERIALIZED (SELECT r.{q('order_id')} AS order_id, r.{q('period')} AS period, "
            f"i.{q('total')} - i.{q('amount_paid')} AS inv_due, i.{q('currency')}::text AS inv_currency "
            f"FROM {renewal} r JOIN {invoice} i ON i.{q('id')} = r.{q('invoice_id')} "
            f"WHERE {pending} AND i.{q('customer_id')} = %s), "
            f"numbered AS (SELECT due.*, pending.inv_due, pending.inv_currency, "
            f"GREATEST(due.expires_at - %s, %s) AS renews_at, row_number() OVER (ORDER BY due.expires_at, due.id)::int AS n "
            f"FROM due LEFT JOIN pending ON pending.order_id = due.id AND pending.period = due.current_period + 1), "
            f"keys AS (SELECT {key}, width_bucket(renews_at, %s::timestamptz[]) - 1 AS month, array_agg(n) AS positions "
            f"FROM numbered GROUP BY {key}, month) "
            f"SELECT {_KEY_ROW} AS part, NULL::int AS n, NULL::bigint AS id, NULL::timestamptz AS renews_at, NULL AS plan_name, "
            f"{key}, p.{q('base_currency')} AS scheduled_base_currency, p.{q('name')} AS scheduled_name, month, positions "
            f"FROM keys LEFT JOIN {plan} p ON p.{q('id')} = keys.scheduled_plan_id "
            f"UNION ALL SELECT {_SHOWN_ROW}, n, numbered.id, renews_at, p.{q('name')}, {', '.join(['NULL'] * 11)} "
            f"FROM numbered JOIN {plan} p ON p.{q('id')} = numbered.plan_id WHERE n <= %s ORDER BY part, n")
    return sql


@dataclass(slots=True)
class _DueOrder:
    """A due order as `pricing.renewal_amount` reads it (the attributes of `Order` it uses)."""
    currency: str
    price: Decimal
    addons_price: Decimal
    period_months: int
    scheduled_plan_id: int | None
    scheduled_plan: Plan | None


def _provider_month_starts(now: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The starts of the provider's calendar months (core.calendar) from `now`'s to `end`'s."""
    starts = [_provider_month(now)[0]]
    while True:
        following = _provider_month(starts[-1])[1]
        if following > end:
            return starts
        starts.append(following)


def renewal_forecast(*, customer: Customer, now: dt.datetime | None = None, days: int = FORECAST_DAYS,
                     currencies: list[Currency] | None = None, balance: Decimal | None = None,
                     shown: int | None = None) -> RenewalForecast:
    """Which services the auto-renewal job will renew in the next `days` days, for how much, and
    whether the balance (then auto-payment within its monthly cap) covers each in turn.

    The orders are the job's own `due_for_auto_renewal()` query evaluated at the end of the window;
    the price is the job's `pricing.renewal_amount()` (plan + add-ons), plus the tax billing adds when it issues the
    invoice (`billing.selectors.tax_for` and `billing.tax.invoice_totals`, as the job's invoices). A renewal invoice the job already issued (a pending
    renewal for the next period) is forecast at what it still asks for. Every due renewal is priced
    and counted (totals, coverage, shortfall), but only the soonest `shown` (DASHBOARD_FORECAST_ROWS)
    become rows. A fixed number of queries: the due orders (see `_forecast_sql`), the scheduled plans'
    prices (only when one is scheduled), tax and auto-payment settings.
    """
    now = now or timezone.now()
    shown = settings.DASHBOARD_FORECAST_ROWS if shown is None else shown
    currency = customer.currency
    balance = balance_of(customer) if balance is None else balance
    # The job renews an order ORDERS_RENEW_HOURS_BEFORE_EXPIRY before it expires (or at its next run).
    lead = dt.timedelta(hours=settings.ORDERS_RENEW_HOURS_BEFORE_EXPIRY)
    end = now + dt.timedelta(days=days)
    month_starts = _provider_month_starts(now, end)
    due_sql, due_params = _DUE_ORDERS.statement(customer_id=customer.pk, horizon=end + lead)
    with connection.cursor() as cursor:
        execute_prepared(cursor, _forecast_sql(due_sql), [*due_params, customer.pk, lead, now, month_starts, shown])
        found = cursor.fetchall()
    key_rows = [row[5:] for row in found if row[0] == _KEY_ROW]  # (*price key, month, positions)
    count = sum(len(positions) for *_key, _month, positions in key_rows)
    keys = [0] * count  # each due order's price key (an index into `representatives`), in the job's order
    months = [0] * count  # and its provider month (0: the current one)
    key_indexes: dict[tuple, int] = {}  # a price key spans several months: one index for all its rows
    for *key, month, positions in key_rows:
        index = key_indexes.setdefault(tuple(key), len(key_indexes))
        for position in positions:
            keys[position - 1] = index
            months[position - 1] = month
    tax = None
    if keys:
        try:
            tax = tax_for(customer)
        except TaxNotConfigured:  # the renewal invoice will be refused too; forecast the amount without tax
            tax = NO_TAX
    table = RateTable(currencies if currencies is not None else enabled_currencies())
    autopay = card_auto_top_up_settings_for(customer)
    autopay_on = bool(autopay and autopay.enabled and autopay.method_id)
    today = provider_today(now)
    left_this_month = max(ZERO, autopay.monthly_limit - card_auto_top_up_month_used(customer=customer, today=today)) if autopay_on else ZERO
    month_cap = autopay.monthly_limit if autopay_on else ZERO

    # Each price key once: (amount, currency, in account currency, error).
    scheduled_plans: dict[int, Plan] = {}
    representatives = []
    for (inv_due, inv_currency, order_currency, price, addons_price, period_months, scheduled_id, scheduled_base_currency,
         scheduled_name) in key_indexes:
        scheduled = None
        if scheduled_id is not None:
            scheduled = scheduled_plans.get(scheduled_id)
            if scheduled is None:
                scheduled = scheduled_plans[scheduled_id] = Plan(pk=scheduled_id, base_currency=scheduled_base_currency,
                                                                 name=scheduled_name)
        pending = None if inv_due is None else (inv_due, inv_currency)
        representatives.append((_DueOrder(order_currency, price, addons_price, period_months, scheduled_id, scheduled), pending))
    scheduled_prices = _scheduled_plan_prices(set(scheduled_plans))
    priced = [_forecast_price(order, pending, scheduled_prices, tax, table, currency) for order, pending in representatives]

    forecast = RenewalForecast(rows=[], balance=balance, currency=currency, autopay_enabled=autopay_on,
                               autopay_left_this_month=left_this_month, count=len(keys))
    for part, n, pk, renews_at, plan_name, *_rest in found:
        if part == _SHOWN_ROW:
            amount, row_currency, in_account, error = priced[keys[n - 1]]
            forecast.rows.append(ForecastRow(order_id=pk, plan_name=plan_name, renews_at=renews_at, amount=amount,
                                             currency=row_currency, amount_in_account_currency=in_account, error=error))
    forecast.more_count = len(keys) - len(forecast.rows)
    rows = forecast.rows
    counts = Counter(keys)  # {price key: renewals}
    priced_counts = [(priced[key][2], count) for key, count in counts.items() if not priced[key][3]]
    total = sum((in_account * count for in_account, count in priced_counts), ZERO)
    if balance >= total and all(in_account >= ZERO for in_account, _count in priced_counts):
        # The balance pays every priced renewal in turn (what is left never falls below what is still due):
        # both walks below would only subtract. Only the unpriced ones are uncovered.
        forecast.total = total
        forecast.uncovered = sum(count for key, count in counts.items() if priced[key][3])
        forecast.more_total = total - sum((row.amount_in_account_currency for row in rows if not row.error), ZERO)
        for row in rows:
            if not row.error:
                row.covered_by = "balance"
        return forecast
    # Two walks in date order: `running`/`cap_left` replay the job (it leaves an unaffordable renewal
    # unpaid and keeps the balance for the next one); `topped_up`/`topped_cap` replay it after the
    # customer added the shortfall, so leftover balance is not counted against several renewals.
    cap_left: dict[int, Decimal] = {0: left_this_month}
    running, topped_up, topped_cap = balance, balance, dict(cap_left)
    for index, (key, month) in enumerate(zip(keys, months)):
        in_account, error = priced[key][2:]
        if error:
            forecast.uncovered += 1
            continue
        forecast.total += in_account
        if index >= shown:
            forecast.more_total += in_account
        covered_by, running = _cover(in_account, running, cap_left, month, month_cap)
        if index < shown:
            rows[index].covered_by = covered_by
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


def _cover(needed: Decimal, balance: Decimal, cap_left: dict, month: int, month_cap: Decimal) -> tuple[str, Decimal]:
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


def _forecast_price(order: _DueOrder, pending: tuple[Decimal, str] | None, scheduled_prices: dict, tax: TaxDecision,
                    table: RateTable, account_currency: str) -> tuple[Decimal, str, Decimal | None, str]:
    """(amount, its currency, the amount in the account currency or None, error): what the job's renewal
    invoice will ask for (`pricing.renewal_amount` + `billing.tax.invoice_totals`), or why it cannot be priced;
    an already issued renewal invoice's open amount when `pending` ((amount, currency))."""
    if pending is not None:
        amount, currency = pending
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


def _scheduled_plan_prices(plan_ids: set[int]) -> dict[int, list[PlanPrice]]:
    """{plan id: its PlanPrice rows} for the orders' scheduled plans, one query (none without any)."""
    prices: dict[int, list[PlanPrice]] = {}
    if plan_ids:
        for price in PlanPrice.objects.filter(plan_id__in=plan_ids):
            prices.setdefault(price.plan_id, []).append(price)
    return prices


@dataclass(frozen=True)
class AddonRow:
    """An add-on on the service's add-ons page: steps held, and the price of a step per period (the
    held price, or the catalogue's in the order's currency; None when it cannot be priced now)."""
    addon: PlanAddon
    quantity: int
    unit_price: Decimal | None
    held: bool

    @property
    def amount(self):
        return self.unit_price * self.quantity if self.unit_price is not None else None

    @property
    def label(self) -> str:
        """What is held, as the select names it ("4 GB", "Yes")."""
        return dict(self.choices).get(self.quantity, "")

    @property
    def choices(self) -> list[tuple[int, str]]:
        from .addons import quantity_choices

        return quantity_choices(self.addon)


def order_addon_rows(*, order: Order) -> list[AddonRow]:
    """The add-ons of the order's plan (and any it holds that are no longer sold), with what it holds."""
    from django.core.exceptions import ValidationError

    from . import pricing
    from .models import OrderAddon

    held = {row.addon_id: row for row in OrderAddon.objects.filter(order=order).select_related("addon")}
    offered = list(PlanAddon.objects.filter(plan_id=order.plan_id, is_active=True).prefetch_related("prices")
                   .select_related("plan").order_by("sort_order", "pk"))
    rows = []
    for addon in offered:
        row = held.pop(addon.pk, None)
        if row is not None:
            rows.append(AddonRow(addon=addon, quantity=row.quantity, unit_price=row.unit_price, held=True))
            continue
        try:
            price = pricing.addon_price(addon=addon, period_months=order.period_months, currency=order.currency).amount
        except ValidationError:
            price = None
        rows.append(AddonRow(addon=addon, quantity=0, unit_price=price, held=False))
    rows += [AddonRow(addon=row.addon, quantity=row.quantity, unit_price=row.unit_price, held=True) for row in held.values()]
    return rows
