"""Automatic renewal: the one code path behind the Celery beat task and `manage.py renew_services`.

Algorithm (docs/ARCHITECTURE.md, "Orders"):
1. Walk the due orders by primary key in chunks. Each chunk is one transaction that claims its rows
   with `SELECT … FOR UPDATE SKIP LOCKED`, so overlapping runs and several workers split the work
   instead of queueing behind each other; a row another run renewed meanwhile no longer matches
   "due" when PostgreSQL re-checks it under the lock.
2. One `INSERT … ON CONFLICT (order_id, period) DO NOTHING` writes the chunk's OrderRenewal rows.
   The unique (order, period) key makes a second charge for a period impossible, whatever path
   (job, customer, gateway) got there first; a pending row from an earlier attempt is reused.
3. The chunk is then renewed set-based, with a constant number of statements: billing.bulk issues
   the missing invoices (a block of numbers from one counter UPDATE) and pays, from the balance
   accounts locked in one statement, every invoice the balance covers in (customer, order) order;
   the paid renewals are applied with `renewing.renewal_extend` (the rule `renewal_apply` uses) and
   written with one UPDATE per table and one events insert. The notices (invoice issued, service
   renewed) are written as one pending batch per kind and stored right after the chunk commits
   (`notifications.deferred`), so the chunk's hold on the invoice-number counter does not include them.
   Orders billed in another currency than the account (FX), or a chunk the set-based path refuses
   with an error, go through the one-by-one services instead.
4. An order whose customer lacks funds never holds back the rest of the chunk: it keeps its unpaid
   renewal invoice and, after the chunk commits, billing's auto-payment is asked once per customer
   (`request_auto_payment`); if that cannot help, one notification for the period. Other per-order errors are logged and
   counted. A deadlock or lost lock rolls the whole chunk back and retries it.
5. A run killed half-way leaves whole chunks committed or not at all; the next run finishes the rest.
   Memory stays flat: only one chunk of orders is held at a time.
"""
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import Exists, Q
from django.utils import timezone

from accounts.models import Customer
from billing import bulk
from billing.models import Invoice
from billing.services.invoices import invoice_pay_from_balance
from core.links import link_for
from core.sql import insert_rows, update_rows
from notifications.deferred import notice_batches_deliver, notices_defer
from notifications.kinds import Kind

from .. import addons, pricing, promo
from ..models import Order, OrderAddon, OrderEvent, OrderRenewal, Plan
from . import renewing
from .common import Source, order_label

logger = logging.getLogger(__name__)

RETRYABLE_ATTEMPTS = 5


def due_for_auto_renewal(now: datetime, *, customer_id: int | None = None):
    """Orders whose auto-renewal should run now: auto-renew on (explicitly or by the account default),
    not cancelled at period end, expiring within ORDERS_RENEW_HOURS_BEFORE_EXPIRY (or past it).
    `customer_id`: only that customer's, its default read once (an uncorrelated EXISTS) instead of joined
    to each order: a prepared statement's generic plan would look the customer up once per order."""
    horizon = now + timedelta(hours=settings.ORDERS_RENEW_HOURS_BEFORE_EXPIRY)
    due = Order.objects.filter(status__in=renewing.RENEWABLE, cancel_at_period_end=False, expires_at__lte=horizon)
    if customer_id is None:
        return due.filter(Q(auto_renew=True) | Q(auto_renew__isnull=True, customer__auto_renew_default=True))
    by_default = Exists(Customer.objects.filter(pk=customer_id, auto_renew_default=True))
    return due.filter(Q(auto_renew=True) | (Q(auto_renew__isnull=True) & by_default), customer_id=customer_id)


def request_auto_payment(*, customer: Customer) -> bool:
    """THE place where auto-renewal asks for money beyond the balance before giving up.

    Billing's auto-payment (issue 6) charges the customer's saved method, at most once a day and
    within the monthly cap, for what their open renewal invoices need; when that money is credited,
    billing pays open service invoices from the balance, which renews the orders through the
    invoice-paid hook. True means money was collected or is on its way. Called after the chunk's
    transaction has committed, so no row locks are held during the gateway call.
    """
    from billing.gateways.selectors import card_auto_top_up_needed_amount
    from billing.gateways.services import card_auto_top_up_charge
    from billing.selectors import balance_of

    needed = card_auto_top_up_needed_amount(customer=customer, balance=balance_of(customer))
    if needed <= 0:
        return False
    try:
        return card_auto_top_up_charge(customer=customer, needed_amount=needed, reason="renewal")
    except Exception:  # a broken gateway must not stop the run; the failure notice goes out instead
        logger.exception("Auto-payment for customer %s failed", customer.pk)
        return False


def _after_unpaid(unpaid: list[int]) -> None:
    """Renewals the balance did not cover: ask auto-payment once per customer, else notify (once per period)."""
    asked: dict[int, bool] = {}
    for renewal in (OrderRenewal.objects.filter(pk__in=unpaid, status=OrderRenewal.Status.PENDING)
                    .select_related("order__customer", "order__plan").order_by("order__customer_id", "pk")):
        customer = renewal.order.customer
        if customer.pk not in asked:
            asked[customer.pk] = request_auto_payment(customer=customer)
        if not asked[customer.pk]:
            with transaction.atomic():
                renewing.renewal_failed_notify(order=renewal.order, renewal=renewal)


@dataclass
class RenewalRunSummary:
    claimed: int = 0
    renewed: int = 0
    unpaid: int = 0
    errors: int = 0
    chunks: int = 0
    retries: int = 0
    error_orders: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"claimed {self.claimed}, renewed {self.renewed}, left unpaid {self.unpaid}, "
                f"errors {self.errors}, chunks {self.chunks}, retried chunks {self.retries}")


def _insert_renewal_rows(rows: list[tuple]) -> None:
    """Set-based insert of (order_id, period, amount, currency, plan_id, add-ons snapshot); existing
    periods are kept."""
    if not rows:
        return
    table = OrderRenewal._meta.db_table
    now = timezone.now()
    values = ", ".join(["(%s, %s, 1, %s, %s, %s, %s::jsonb, 'pending', true, %s)"] * len(rows))
    params = [value for row in rows for value in (*row[:5], json.dumps(row[5]), now)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (order_id, period, periods, amount, currency, plan_id, addons, status, automatic, "
            f"created_at) VALUES {values} ON CONFLICT (order_id, period) DO NOTHING",
            params,
        )


def _held_snapshots(orders: list[Order]) -> dict[int, list[dict]]:
    """{order id: snapshot of the add-ons it holds} for a chunk, one query."""
    held: dict[int, list] = {}
    for row in (OrderAddon.objects.filter(order_id__in=[order.pk for order in orders]).select_related("addon")
                .order_by("order_id", "addon__sort_order", "addon_id")):
        held.setdefault(row.order_id, []).append(addons.AddonItem(addon=row.addon, quantity=row.quantity,
                                                                   unit_price=row.unit_price))
    return {order_id: addons.snapshot(items) for order_id, items in held.items()}


def _is_retryable(error: OperationalError) -> bool:
    code = getattr(getattr(error, "__cause__", None), "pgcode", None)
    return code in {"40P01", "40001", "55P03"}  # deadlock, serialization failure, lock not available


def _renew_chunk(*, after: int, now: datetime, chunk_size: int, summary: RenewalRunSummary,
                 on_order: Callable[[Order], None] | None, unpaid: list[int]) -> int | None:
    """Claim and renew one chunk in one transaction; returns the last claimed pk, None when done.
    Renewals left unpaid are appended to `unpaid` (handled after commit)."""
    with transaction.atomic():
        orders, plans = _claim(after=after, now=now, chunk_size=chunk_size)
        if not orders:
            return None
        failed: list[int] = []
        renewals = _pending_renewals(orders, plans, failed)
        invoice_ids = [r.invoice_id for r in renewals.values() if r.invoice_id]
        invoices = Invoice.objects.in_bulk(invoice_ids) if invoice_ids else {}
        work = _orders_to_charge(orders, renewals, invoices, on_order)
        plan_addons = addons.plan_addons_of(renewals[order.pk] for order in work)
        charges = {order.pk: _charge(order, renewals[order.pk], invoices, plan_addons) for order in work}
        set_based, one_by_one = _split_by_path(work, renewals, charges)
        if set_based and not _renew_set_based_or_refuse(set_based, renewals, charges, now, summary, unpaid):
            one_by_one = sorted(set_based + one_by_one, key=lambda o: (o.customer_id, o.pk))
        for order in one_by_one:
            _renew_one(order, renewals[order.pk], invoices, summary=summary, unpaid=unpaid, failed=failed)
        summary.claimed += len(orders)
        summary.errors += len(failed)
        summary.error_orders.extend(failed)
        return orders[-1].pk


def _claim(*, after: int, now: datetime, chunk_size: int) -> tuple[list[Order], dict[int, Plan]]:
    """The chunk's orders, locked, with their customers and plans: one instance per customer and per
    plan (a customer's orders and a plan's many orders share it), not one per order. Returns the orders
    and the plans by pk."""
    orders = list(due_for_auto_renewal(now).filter(pk__gt=after)
                  .select_for_update(skip_locked=True, of=("self",)).order_by("pk")[:chunk_size])
    customers = Customer.objects.in_bulk({order.customer_id for order in orders})
    plans = _plans({order.plan_id for order in orders} | {order.scheduled_plan_id for order in orders}, {})
    for order in orders:
        order.customer = customers[order.customer_id]
        order.plan = plans[order.plan_id]
        order.scheduled_plan = plans.get(order.scheduled_plan_id)
    return orders, plans


def _plans(ids: set, known: dict[int, Plan]) -> dict[int, Plan]:
    """`known` plus the plans among `ids` it lacks (one query when some are missing)."""
    missing = {pk for pk in ids if pk is not None and pk not in known}
    return known | Plan.objects.in_bulk(missing) if missing else known


def _pending_renewals(orders: list[Order], plans: dict[int, Plan], failed: list[int]) -> dict[int, OrderRenewal]:
    """The chunk's pending renewal for each order's next period: inserted, or reused from an earlier
    attempt. An order without a renewal price is appended to `failed`."""
    rows = []
    snapshots = _held_snapshots(orders)
    for order in orders:
        try:
            amount = pricing.renewal_amount(order)
        except ValidationError:  # e.g. the scheduled plan lost its price for this period
            logger.exception("No renewal price for order %s", order.pk)
            failed.append(order.pk)
            continue
        rows.append((order.pk, order.current_period + 1, amount, order.currency, pricing.renewal_plan(order).pk,
                     snapshots.get(order.pk, [])))
    _insert_renewal_rows(rows)
    wanted = {order.pk: order.current_period + 1 for order in orders}
    renewals = {
        renewal.order_id: renewal
        for renewal in OrderRenewal.objects.filter(order_id__in=list(wanted), status=OrderRenewal.Status.PENDING)
        if wanted[renewal.order_id] == renewal.period
    }
    plans = _plans({renewal.plan_id for renewal in renewals.values()}, plans)
    for renewal in renewals.values():
        renewal.plan = plans.get(renewal.plan_id)
    return renewals


def _orders_to_charge(orders: list[Order], renewals: dict[int, OrderRenewal], invoices: dict,
                      on_order: Callable[[Order], None] | None) -> list[Order]:
    """Orders with a pending renewal whose invoice (if any) is still open, in (customer, order) order:
    billing pays in the order given, so a customer's balance is spent on their oldest orders first,
    whichever path pays."""
    work = []
    for order in sorted((o for o in orders if o.pk in renewals), key=lambda o: (o.customer_id, o.pk)):
        invoice = invoices.get(renewals[order.pk].invoice_id)
        if invoice is not None and not invoice.is_open:
            continue  # a paid or cancelled invoice on a pending renewal: nothing to charge here
        if on_order is not None:
            on_order(order)
        work.append(order)
    return work


def _split_by_path(work: list[Order], renewals: dict[int, OrderRenewal],
                   charges: dict[int, bulk.Charge]) -> tuple[list[Order], list[Order]]:
    """(set-based, one by one): FX charges and renewals with a promo-code discount (two lines) take the
    one-by-one services."""
    discounted = promo.orders_with_renewal_discount({o.pk: renewals[o.pk] for o in work}) if work else set()
    set_based, one_by_one = [], []
    for order in work:
        (set_based if bulk.supports(charges[order.pk]) and order.pk not in discounted else one_by_one).append(order)
    return set_based, one_by_one


def _renew_set_based_or_refuse(orders: list[Order], renewals: dict[int, OrderRenewal], charges: dict[int, bulk.Charge],
                               now: datetime, summary: RenewalRunSummary, unpaid: list[int]) -> bool:
    """The set-based path in a savepoint; False when it refused the chunk (one bad row must not stop
    the chunk: the caller redoes it order by order). Lock errors roll the whole chunk back."""
    try:
        with transaction.atomic():
            renewed, left = _renew_set_based(orders, renewals, charges, now)
    except OperationalError:
        raise
    except Exception:
        logger.exception("Set-based renewal of orders %s..%s failed; renewing them one by one",
                         orders[0].pk, orders[-1].pk)
        return False
    summary.renewed += renewed
    summary.unpaid += len(left)
    unpaid.extend(left)
    return True


def _charge(order: Order, renewal: OrderRenewal, invoices: dict, plan_addons: dict) -> bulk.Charge:
    """The renewal as a billing charge: its open invoice from an earlier attempt, or a new one (a line
    for the plan, one per add-on)."""
    if renewal.invoice_id in invoices:
        return bulk.Charge(customer=order.customer, currency=renewal.currency, invoice_id=renewal.invoice_id)
    plan_line, *addon_lines = renewing.renewal_lines(order=order, renewal=renewal, plan_addons_by_id=plan_addons)
    return bulk.Charge(
        customer=order.customer, currency=renewal.currency, quantity=plan_line.quantity,
        description=plan_line.description, unit_price=plan_line.unit_price, reference=plan_line.reference,
        idempotency_key=f"order:{order.pk}:renewal:{renewal.pk}", extra_lines=addon_lines,
    )


def _renew_set_based(orders: list[Order], renewals: dict[int, OrderRenewal], charges: dict[int, bulk.Charge],
                     now: datetime) -> tuple[int, list[int]]:
    """Issue and pay the chunk's invoices with billing.bulk, then apply the paid renewals with a few
    statements: what `renewing.renewal_apply` does per order. Returns (renewed, unpaid renewal pks)."""
    from notifications.bulk import Notice

    results = bulk.invoices_issue_and_pay(
        kind=Invoice.Kind.RENEWAL, charges=[charges[o.pk] for o in orders],
        applied_by_caller=[renewing.on_renewal_invoice_paid],
    )
    renewal_rows, order_rows, events, notices, plan_changes, left = [], [], [], [], [], []
    for order, result in zip(orders, results):
        renewal = renewals[order.pk]
        renewal.invoice_id = result.invoice_id
        if not result.paid:
            left.append(renewal.pk)
            renewal_rows.append({"id": renewal.pk, "invoice_id": renewal.invoice_id, "status": renewal.status,
                                 "paid_at": None, "starts_at": None, "ends_at": None})
            continue
        previous, changed_plan = renewing.renewal_extend(order=order, renewal=renewal, now=now)
        renewal_rows.append({"id": renewal.pk, "invoice_id": renewal.invoice_id, "status": renewal.status,
                             "paid_at": renewal.paid_at, "starts_at": renewal.starts_at, "ends_at": renewal.ends_at})
        order_rows.append({field.attname: getattr(order, field.attname) for field in _ORDER_FIELDS} | {"id": order.pk})
        events.append({"order_id": order.pk, "action": "renewed", "source": Source.PAYMENT,
                       "from_status": previous, "to_status": order.status, "created_at": now,
                       "details": renewing.renewed_details(order, renewal)})
        notices.append(Notice(
            customer=order.customer, link=link_for("orders:order_detail", order.pk),
            dedupe_key=f"order:{order.pk}:period:{renewal.period}:renewed",
            context={"service": order_label(order), **renewing.renewed_context(order, renewal)},
        ))
        if changed_plan:
            plan_changes.append((order, renewal, changed_plan))
    update_rows(OrderRenewal, renewal_rows, ["invoice_id", "status", "paid_at", "starts_at", "ends_at"])
    update_rows(Order, order_rows, [field.attname for field in _ORDER_FIELDS])
    insert_rows(OrderEvent, events, returning=None)
    notices_defer(kind=Kind.SERVICE_RENEWED, notices=notices)  # stored after commit, outside the counter's hold
    for order, renewal, (old_plan, new_plan) in plan_changes:
        renewing.plan_change_applied(order=order, renewal=renewal, old_plan=old_plan, new_plan=new_plan)
    return len(order_rows), left


_ORDER_FIELDS = [Order._meta.get_field(name) for name in renewing.RENEWAL_ORDER_FIELDS]


def _renew_one(order: Order, renewal: OrderRenewal, invoices: dict, *, summary: RenewalRunSummary,
               unpaid: list[int], failed: list[int]) -> None:
    """One order through the one-by-one services (invoices needing a currency conversion, or a
    chunk the set-based path refused); per-order errors are logged and counted."""
    try:
        with transaction.atomic():
            invoice = invoices.get(renewal.invoice_id)
            if invoice is None:
                invoice = renewing.renewal_invoice_issue(order=order, renewal=renewal)
                OrderRenewal.objects.filter(pk=renewal.pk).update(invoice_id=invoice.pk)
                renewal.invoice_id = invoice.pk
            if invoice_pay_from_balance(invoice=invoice):
                summary.renewed += 1
            else:
                unpaid.append(renewal.pk)
                summary.unpaid += 1
    except OperationalError:
        raise
    except Exception:
        logger.exception("Renewal of order %s failed", order.pk)
        failed.append(order.pk)


def renewals_run(*, now: datetime | None = None, chunk_size: int | None = None,
                 progress: Callable[[RenewalRunSummary], None] | None = None,
                 on_order: Callable[[Order], None] | None = None) -> RenewalRunSummary:
    """Renew every order due for auto-renewal. Safe to run concurrently and to re-run at any time.

    `progress` is called after each committed chunk; `on_order` before each payment (tests inject
    failures through it).
    """
    now = now or timezone.now()
    chunk_size = chunk_size or settings.ORDERS_JOB_CHUNK_SIZE
    summary = RenewalRunSummary()
    after = 0
    while True:
        for attempt in range(RETRYABLE_ATTEMPTS):
            partial, unpaid = RenewalRunSummary(), []
            try:
                last = _renew_chunk(after=after, now=now, chunk_size=chunk_size, summary=partial, on_order=on_order,
                                    unpaid=unpaid)
                break
            except OperationalError as error:
                if not _is_retryable(error) or attempt == RETRYABLE_ATTEMPTS - 1:
                    raise
                summary.retries += 1
                time.sleep(0.05 * (attempt + 1))
        if last is None:
            break
        notice_batches_deliver()  # the chunk's notices (invoice issued, service renewed), before any "renewal failed"
        _after_unpaid(unpaid)
        for name in ("claimed", "renewed", "unpaid", "errors"):
            setattr(summary, name, getattr(summary, name) + getattr(partial, name))
        summary.error_orders.extend(partial.error_orders)
        summary.chunks += 1
        after = last
        if progress is not None:
            progress(summary)
    logger.info("Auto-renewal run: %s", summary)
    return summary


def renewals_run_record(summary: RenewalRunSummary) -> None:
    """Keep the last scheduled run's result for /metrics (portal_renewal_run_*); called by the beat task
    and `manage.py renew_services`, not by renewals_run itself (one upsert, outside its chunks)."""
    from ops.services import heartbeat_record

    counts = {"claimed": summary.claimed, "renewed": summary.renewed, "unpaid": summary.unpaid, "errors": summary.errors}
    heartbeat_record(name="renewal-run", ok=summary.errors == 0, detail=json.dumps(counts))
