"""Provisioners: how a paid order gets its server. Called inside the caller's transaction.

- manual: staff set the server up and complete the order in the admin, entering its IP address;
- ip_pool: an address is taken from the plan's pool. `SELECT … FOR UPDATE SKIP LOCKED` lets parallel
  orders each grab a different free row, and the one-to-one `IpAddress.order` makes a double
  allocation impossible. An empty pool leaves the order waiting for staff.
"""
from dataclasses import dataclass

from django.utils import timezone
from django.utils.translation import gettext as _

from .models import IpAddress, Order, ProductType


@dataclass(frozen=True)
class ProvisionResult:
    ip: str | None
    note: str = ""

    @property
    def done(self) -> bool:
        return self.ip is not None


def _provision_manual(order: Order) -> ProvisionResult:
    return ProvisionResult(ip=None, note=_("Our staff are setting up your server."))


def _provision_ip_pool(order: Order) -> ProvisionResult:
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


PROVISIONERS = {
    ProductType.Provisioner.MANUAL: _provision_manual,
    ProductType.Provisioner.IP_POOL: _provision_ip_pool,
}


def provision(order: Order) -> ProvisionResult:
    return PROVISIONERS[order.plan.product_type.provisioner](order)


def release(order: Order) -> None:
    """Give a pool address back when the service ends (manual IPs belong to staff's own inventory)."""
    IpAddress.objects.filter(order=order).update(order=None, allocated_at=None)
