"""Reads for orders, always scoped to a customer (another customer's order is a 404)."""
from dataclasses import dataclass

from django.db.models import Case, CharField, F, Func, IntegerField, Q, QuerySet, Value, When
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import Customer

from .models import Order, Plan, ProductType

SORTS = {
    "created": "created_at",
    "expires": "expires_at",
    "status": "status_rank",
    "cost": "price",
}
STATUS_RANK = [Order.Status.ACTIVE, Order.Status.PENDING, Order.Status.EXPIRED, Order.Status.SUSPENDED,
               Order.Status.CANCELLED, Order.Status.TERMINATED]


def orders_for(customer: Customer) -> QuerySet[Order]:
    return Order.objects.filter(customer=customer)


def order_get(*, customer: Customer, order_id: int) -> Order:
    return get_object_or_404(
        Order.objects.select_related("plan__product_type", "scheduled_plan", "customer").prefetch_related("plan__locations"),
        customer=customer, pk=order_id,
    )


@dataclass(frozen=True)
class OrderListParams:
    query: str = ""
    status: str = ""
    sort: str = "created"
    descending: bool = True


def order_list(*, customer: Customer, params: OrderListParams) -> QuerySet[Order]:
    """The orders table: search by ID, plan or IP; filter by status; sort by created/expiry/status/cost.
    One query for the page (plan joined), whatever the number of orders."""
    orders = orders_for(customer).select_related("plan").annotate(
        status_rank=Case(*[When(status=s, then=Value(i)) for i, s in enumerate(STATUS_RANK)], output_field=IntegerField()),
    )
    query = params.query.strip().lstrip("#")
    if query:
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


def status_counts(*, customer: Customer) -> dict[str, int]:
    from django.db.models import Count

    return dict(orders_for(customer).values_list("status").annotate(n=Count("pk")).values_list("status", "n"))


def renewable_orders(*, customer: Customer, ids: list[int]) -> QuerySet[Order]:
    return orders_for(customer).filter(pk__in=ids, status__in=[Order.Status.ACTIVE, Order.Status.EXPIRED, Order.Status.SUSPENDED]).select_related("plan").order_by("pk")


def catalogue() -> list[ProductType]:
    """Orderable product types with their active plans, prices and locations (a fixed number of queries)."""
    from django.db.models import Prefetch

    plans = Plan.objects.filter(is_active=True).prefetch_related("prices", "locations").order_by("sort_order", "pk")
    return list(ProductType.objects.filter(is_active=True, plans__is_active=True).distinct()
                .prefetch_related(Prefetch("plans", queryset=plans)).order_by("sort_order", "name"))


def plan_for_order(*, plan_id: int) -> Plan:
    plan = Plan.objects.select_related("product_type").prefetch_related("prices", "locations", "product_type__os_images").filter(
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


def days_remaining(order: Order, now=None) -> int | None:
    if order.expires_at is None or order.status in (Order.Status.CANCELLED, Order.Status.TERMINATED):
        return None
    now = now or timezone.now()
    return max(0, (timezone.localtime(order.expires_at).date() - timezone.localtime(now).date()).days)


def order_setup(*, order: Order) -> dict:
    """The order page's provisioning panel: the create job's progress (no error text: errors are for
    staff), and whether a root password is waiting to be shown once."""
    from .models import ProvisioningJob, VirtualMachine

    job = ProvisioningJob.objects.filter(order=order, action=ProvisioningJob.Action.CREATE).first()
    vm = VirtualMachine.objects.filter(order=order, deleted_at__isnull=True).only("initial_password", "state").first()
    setting_up = order.status == Order.Status.PENDING and order.provisioning in (
        Order.Provisioning.IN_PROGRESS, Order.Provisioning.FAILED)
    step = 0
    if job is not None:
        step = {ProvisioningJob.State.QUEUED: 1, ProvisioningJob.State.RUNNING: 2, ProvisioningJob.State.DONE: 3}.get(job.state, 1)
    return {
        "setting_up": setting_up, "failed": order.provisioning == Order.Provisioning.FAILED,
        "step": step, "percent": {0: 5, 1: 25, 2: 60, 3: 100}[step],
        "delayed": job is not None and job.attempts > 1 and job.state != ProvisioningJob.State.DONE,
        # Not while a reinstall is still building the system the new password belongs to.
        "password_waiting": bool(vm and vm.initial_password and order.status == Order.Status.ACTIVE
                                 and not ProvisioningJob.objects.filter(
                                     order=order, action=ProvisioningJob.Action.REINSTALL,
                                     state__in=(ProvisioningJob.State.QUEUED, ProvisioningJob.State.RUNNING)).exists()),
        "vm_state": vm.state if vm else "",
    }


def renewals_due_next_month(*, customer: Customer, now=None):
    """What the auto-renewal job will charge this customer within the next month for renewals that no
    open invoice asks for yet, in the account currency: `renewal_price()` quantized as the job stores
    it plus the tax billing adds. Registered with `billing.hooks.register_upcoming_charges`, so
    auto-payment tops up for the next month of services (the renewal invoices already issued are
    counted by billing itself)."""
    from decimal import Decimal

    from django.core.exceptions import ValidationError

    from billing.models import Invoice
    from billing.money import quantize
    from billing.rates import RateError, RateTable
    from billing.services.tax import tax_for

    from . import pricing
    from .models import OrderRenewal
    from .services import renewal_batch, renewing

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
            amount = quantize(renewing.renewal_price(order), order.currency)
            amount += quantize(amount * tax.percent / 100, order.currency)
            if order.currency != customer.currency:
                amount = quantize(amount * table.quote(order.currency, customer.currency).rate, customer.currency)
        except (ValidationError, RateError):  # no price or rate now: the job will report it; nothing to add
            continue
        total += amount
    return total
