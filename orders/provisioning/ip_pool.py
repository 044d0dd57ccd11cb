"""ip_pool: an address is taken from the plan's pool. `SELECT … FOR UPDATE SKIP LOCKED` lets parallel
orders each grab a different free row, and the one-to-one `IpAddress.order` makes a double
allocation impossible. An empty pool leaves the order waiting for staff. The libvirt module takes
its VMs' addresses the same way."""
from django.utils import timezone
from django.utils.translation import gettext as _

from orders.models import IpAddress, Order

from .base import ProvisioningModule, ProvisionResult


def address_allocate(order: Order) -> ProvisionResult:
    """The order's pool address (the one it has, or a free one); no ip means waiting for staff."""
    held = IpAddress.objects.filter(order=order).first()
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
    """Give a pool address back (manual IPs belong to staff's own inventory)."""
    IpAddress.objects.filter(order=order).update(order=None, allocated_at=None)


class IpPoolModule(ProvisioningModule):
    code = "ip_pool"
    name = "IP pool"

    def provision(self, order) -> ProvisionResult:
        return address_allocate(order)

    def release(self, order) -> None:
        address_release(order)
