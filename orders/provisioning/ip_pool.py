"""ip_pool: an address is taken from the plan's pool. `SELECT … FOR UPDATE SKIP LOCKED` lets parallel
orders each grab a different free row, and the unique (order, not extra) pair makes a double
allocation of the main address impossible; extra addresses (the extra-IPv4 add-on) come from the
same pool and are flagged `extra`. An empty pool leaves the order waiting for staff. The libvirt module takes
its VMs' addresses the same way."""
from django.utils import timezone
from django.utils.translation import gettext as _

from orders.models import IpAddress, Order

from .base import ProvisioningModule, ProvisionResult


def address_allocate(order: Order) -> ProvisionResult:
    """The order's pool address (the one it has, or a free one); no ip means waiting for staff."""
    held = IpAddress.objects.filter(order=order, extra=False).first()
    if held is not None:
        return ProvisionResult(ip=held.address)
    pool_id = order.plan.ip_pool_id
    if pool_id is None:
        return ProvisionResult(ip=None, note=_("Waiting for staff: no IP pool is configured for this plan."))
    free = list(
        IpAddress.objects.select_for_update(skip_locked=True)
        .filter(pool_id=pool_id, order__isnull=True)
        .order_by("pk")[:1]
    )
    if not free:
        return ProvisionResult(ip=None, note=_("Waiting for staff: the IP pool is exhausted."))
    address = free[0]
    address.order = order
    address.allocated_at = timezone.now()
    address.save(update_fields=["order", "allocated_at"])
    return ProvisionResult(ip=address.address)


def address_release(order: Order) -> None:
    """Give the order's pool addresses back, extra ones included (manual IPs belong to staff's own inventory)."""
    IpAddress.objects.filter(order=order).update(order=None, allocated_at=None, extra=False)


def free_addresses(pool_id: int | None) -> int:
    """How many addresses of the pool are free now (no lock: for a quote; allocation re-checks)."""
    if pool_id is None:
        return 0
    return IpAddress.objects.filter(pool_id=pool_id, order__isnull=True).count()


def extra_addresses_sync(order: Order, wanted: int) -> int:
    """Make the order hold `wanted` extra addresses (the extra-IPv4 add-on) from its plan's pool:
    free ones are taken like the main address (`SKIP LOCKED`), surplus ones (the newest first) are
    given back. Returns how many are still missing (pool exhausted or no pool)."""
    held = list(IpAddress.objects.select_for_update().filter(order=order, extra=True).order_by("allocated_at", "pk"))
    if len(held) > wanted:
        surplus = [address.pk for address in held[wanted:]]
        IpAddress.objects.filter(pk__in=surplus).update(order=None, allocated_at=None, extra=False)
        return 0
    missing = wanted - len(held)
    if missing and order.plan.ip_pool_id is not None:
        free = list(IpAddress.objects.select_for_update(skip_locked=True)
                    .filter(pool_id=order.plan.ip_pool_id, order__isnull=True).order_by("pk")[:missing])
        IpAddress.objects.filter(pk__in=[address.pk for address in free]).update(
            order=order, extra=True, allocated_at=timezone.now())
        missing -= len(free)
    return missing


def extra_addresses(order: Order) -> list[str]:
    return list(IpAddress.objects.filter(order=order, extra=True).order_by("allocated_at", "pk").values_list("address", flat=True))


class IpPoolModule(ProvisioningModule):
    code = "ip_pool"
    name = "IP pool"

    def provision(self, order) -> ProvisionResult:
        return address_allocate(order)

    def release(self, order) -> None:
        address_release(order)
