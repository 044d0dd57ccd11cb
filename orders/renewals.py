"""Automatic renewal: the one code path behind the Celery beat task and `manage.py renew_services`.

Algorithm (docs/ARCHITECTURE.md, "Orders"):
1. Walk the due orders by primary key in chunks. Each chunk is one transaction that claims its rows
   with `SELECT … FOR UPDATE SKIP LOCKED`, so overlapping runs and several workers split the work
   instead of queueing behind each other; a row another run renewed meanwhile no longer matches
   "due" when PostgreSQL re-checks it under the lock.
2. One `INSERT … ON CONFLICT (order_id, period) DO NOTHING` writes the chunk's OrderRenewal rows.
   The unique (order, period) key makes a second charge for a period impossible, whatever path
   (job, customer, gateway) got there first; a pending row from an earlier attempt is reused.
3. Invoices are issued for rows without an open one (billing's document counter is locked first),
   then each invoice is paid from the balance in (customer, order) order — billing's locking order —
   through billing's invoice-paid hook, which extends the order (`services.renewal_apply`).
4. An order whose customer lacks funds never holds back the rest of the chunk: it keeps its unpaid
   renewal invoice and, after the chunk commits, billing's auto-payment is asked once per customer
   (`request_auto_payment`); if that cannot help, one notification for the period. Other per-order errors are logged and
   counted. A deadlock or lost lock rolls the whole chunk back and retries it.
5. A run killed half-way leaves whole chunks committed or not at all; the next run finishes the rest.
   Memory stays flat: only one chunk of orders is held at a time.
"""
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Customer
from billing.models import Invoice
from billing.money import quantize
from billing.services import invoice_pay_from_balance

from . import services
from .models import Order, OrderRenewal

logger = logging.getLogger(__name__)

RETRYABLE_ATTEMPTS = 5


def due_for_auto_renewal(now: datetime):
    """Orders whose auto-renewal should run now: auto-renew on (explicitly or by the account default),
    not cancelled at period end, expiring within ORDERS_RENEW_HOURS_BEFORE_EXPIRY (or past it)."""
    horizon = now + timedelta(hours=settings.ORDERS_RENEW_HOURS_BEFORE_EXPIRY)
    return (Order.objects
            .filter(status__in=services.RENEWABLE, cancel_at_period_end=False, expires_at__lte=horizon)
            .filter(Q(auto_renew=True) | Q(auto_renew__isnull=True, customer__auto_renew_default=True)))


def request_auto_payment(*, customer: Customer) -> bool:
    """THE place where auto-renewal asks for money beyond the balance before giving up.

    Billing's auto-payment (issue 6) charges the customer's saved method, at most once a day and
    within the monthly cap, for what their open renewal invoices need; when that money is credited,
    billing pays open service invoices from the balance, which renews the orders through the
    invoice-paid hook. True means money was collected or is on its way. Called after the chunk's
    transaction has committed, so no row locks are held during the gateway call.
    """
    from billing.gateways.services import autopay_needed_amount, autopay_topup
    from billing.selectors import balance_of

    needed = autopay_needed_amount(customer=customer, balance=balance_of(customer))
    if needed <= 0:
        return False
    try:
        return autopay_topup(customer=customer, needed_amount=needed, reason="renewal")
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
                services.renewal_failed_notify(order=renewal.order, renewal=renewal)


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
    """Set-based insert of (order_id, period, amount, currency, plan_id); existing periods are kept."""
    if not rows:
        return
    table = OrderRenewal._meta.db_table
    now = timezone.now()
    values = ", ".join(["(%s, %s, 1, %s, %s, %s, 'pending', true, %s)"] * len(rows))
    params = [value for row in rows for value in (*row, now)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (order_id, period, periods, amount, currency, plan_id, status, automatic, created_at) "
            f"VALUES {values} ON CONFLICT (order_id, period) DO NOTHING",
            params,
        )


def _is_retryable(error: OperationalError) -> bool:
    code = getattr(getattr(error, "__cause__", None), "pgcode", None)
    return code in {"40P01", "40001", "55P03"}  # deadlock, serialization failure, lock not available


def _renew_chunk(*, after: int, now: datetime, chunk_size: int, summary: RenewalRunSummary,
                 on_order: Callable[[Order], None] | None, unpaid: list[int]) -> int | None:
    """Claim and renew one chunk in one transaction; returns the last claimed pk, None when done.
    Renewals left unpaid are appended to `unpaid` (handled after commit)."""
    with transaction.atomic():
        orders = list(
            due_for_auto_renewal(now).filter(pk__gt=after)
            .select_related("customer", "plan", "scheduled_plan")
            .select_for_update(skip_locked=True, of=("self",)).order_by("pk")[:chunk_size]
        )
        if not orders:
            return None
        rows, failed = [], []
        for order in orders:
            try:
                price = services.renewal_price(order)
            except ValidationError:  # e.g. the scheduled plan lost its price for this period
                logger.exception("No renewal price for order %s", order.pk)
                failed.append(order.pk)
                continue
            rows.append((order.pk, order.current_period + 1, quantize(price, order.currency), order.currency,
                         services.renewal_plan(order).pk))
        _insert_renewal_rows(rows)
        wanted = {order.pk: order.current_period + 1 for order in orders}
        renewals = {
            renewal.order_id: renewal
            for renewal in OrderRenewal.objects.filter(order_id__in=list(wanted), status=OrderRenewal.Status.PENDING)
            if wanted[renewal.order_id] == renewal.period
        }
        invoices = Invoice.objects.in_bulk([r.invoice_id for r in renewals.values() if r.invoice_id])
        work = sorted((o for o in orders if o.pk in renewals), key=lambda o: (o.customer_id, o.pk))

        # Issue first (document counter), then pay (invoices, then balances): billing's lock order.
        for order in work:
            renewal = renewals[order.pk]
            invoice = invoices.get(renewal.invoice_id)
            if invoice is not None and (invoice.is_open or invoice.status == Invoice.Status.PAID):
                continue
            try:
                with transaction.atomic():
                    invoice = services.renewal_invoice_issue(order=order, renewal=renewal)
                    OrderRenewal.objects.filter(pk=renewal.pk).update(invoice_id=invoice.pk)
            except OperationalError:
                raise
            except Exception:
                logger.exception("Could not issue the renewal invoice of order %s", order.pk)
                failed.append(order.pk)
                continue
            renewal.invoice_id = invoice.pk
            invoices[invoice.pk] = invoice

        for order in work:
            renewal = renewals[order.pk]
            invoice = invoices.get(renewal.invoice_id)
            if invoice is None:
                continue
            if on_order is not None:
                on_order(order)
            try:
                with transaction.atomic():
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
        summary.claimed += len(orders)
        summary.errors += len(failed)
        summary.error_orders.extend(failed)
        return orders[-1].pk


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
