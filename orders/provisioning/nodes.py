"""What the hypervisor modules share: VMs on staff-defined `HypervisorNode`s of their kind, placed
under row locks and recorded in a `VirtualMachine` row before the hypervisor is called.

- Placement: the least-loaded active node of the module's kind (by RAM share after placing) that fits
  the plan's vCPU, RAM and disk within its capacity, serves the order's location and has the order's
  OS template. It is chosen under row locks on the nodes (lock order: order → nodes) and saved on the
  `VirtualMachine` row with the VM's name and root password: a retried create goes to the same node,
  finds the same VM, and keeps the same password.
- `module_settings` may override the plan's figures (`SETTINGS`, with their minimums).
"""
from __future__ import annotations

import secrets

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils.translation import gettext as _

from orders.models import HypervisorNode, Order, OsTemplate, VirtualMachine

from .base import MachineSpec, ModuleError, NotSupported, ProvisioningModule, ProvisionResult
from .ip_pool import address_allocate

SETTINGS = {"vcpus": 1, "memory_mib": 32, "disk_gib": 1}  # overrides of the plan's figures, with minimums


def vm_name(order: Order) -> str:
    """The VM's name on its node (libvirt domain, Proxmox VE VM name): `<prefix>-order-<id>`."""
    return f"{settings.PROVISIONING_LIBVIRT_PREFIX}-order-{order.pk}"


def vm_mark(vm: VirtualMachine) -> str:
    """Which VM row a VM on a node belongs to, written on the VM (libvirt metadata, Proxmox VE
    description): a same-named VM left by another database (a reset demo, a second portal with the
    same prefix) is never adopted as ours."""
    return f"{vm.pk}@{vm.created_at.isoformat()}"


def node_usage() -> dict[int, dict]:
    """Reserved vCPU, RAM and disk per node, from the live VM rows."""
    rows = (VirtualMachine.objects.filter(deleted_at__isnull=True).values("node_id")
            .annotate(vcpus=Sum("vcpus"), memory_mib=Sum("memory_mib"), disk_gib=Sum("disk_gib")))
    return {row["node_id"]: row for row in rows}


class NodeModule(ProvisioningModule):
    """Base of the modules whose VMs live on `HypervisorNode`s of `node_kind`."""

    runs_in_jobs = True
    node_kind: str = ""

    def settings_errors(self, module_settings: dict) -> list[str]:
        errors = []
        for key, value in module_settings.items():
            if key not in SETTINGS:
                errors.append(_("Unknown setting %(key)s; known: %(known)s.") % {"key": key, "known": ", ".join(SETTINGS)})
            elif not isinstance(value, int) or isinstance(value, bool) or value < SETTINGS[key]:
                errors.append(_("%(key)s must be a whole number of at least %(min)s.") % {"key": key, "min": SETTINGS[key]})
        return errors

    def machine_spec(self, plan) -> MachineSpec:
        spec = super().machine_spec(plan)
        overrides = plan.module_settings or {}
        return MachineSpec(vcpus=overrides.get("vcpus", spec.vcpus), memory_mib=overrides.get("memory_mib", spec.memory_mib),
                           disk_gib=overrides.get("disk_gib", spec.disk_gib))

    def resize_needs_reboot(self, old: MachineSpec, new: MachineSpec) -> bool:
        return (old.vcpus, old.memory_mib) != (new.vcpus, new.memory_mib)

    def node_health(self, node: HypervisorNode) -> tuple[bool, str]:
        """(ok, message) for the admin's health check."""
        raise NotImplementedError

    # --- payment time -------------------------------------------------------------------------------
    def provision(self, order: Order) -> ProvisionResult:
        address = address_allocate(order)
        if not address.done:
            return address  # no pool or pool exhausted: waiting for staff, as with ip_pool
        return ProvisionResult(ip=None, queued=True, note=_("Your server is being set up."))

    # --- placement ------------------------------------------------------------------------------------
    def _new_vm_fields(self, order: Order) -> dict:
        """Module-specific fields of a new VM row (Proxmox VE: its VMID)."""
        return {}

    @transaction.atomic
    def _machine(self, order: Order) -> VirtualMachine:
        """The order's VM row: found, or placed on a node now (committed before the hypervisor is called)."""
        Order.objects.select_for_update(of=("self",)).get(pk=order.pk)
        vm = VirtualMachine.objects.select_related("node", "template").filter(order=order).first()
        if vm is not None:
            return vm
        spec = self.machine_spec(order.plan)
        nodes = (HypervisorNode.objects.select_for_update(of=("self",))
                 .filter(is_active=True, kind=self.node_kind).order_by("pk"))
        location = (order.options or {}).get("location")
        if location:
            nodes = nodes.filter(Q(location__isnull=True) | Q(location__name=location) | Q(location__code=location))
        os_name = (order.options or {}).get("os_image")
        nodes = list(nodes)
        templates = OsTemplate.objects.filter(node__in=nodes, is_active=True).select_related("os_image")
        if os_name:
            templates = templates.filter(os_image__name=os_name)
        template_for = {}
        for template in templates.order_by("os_image__sort_order", "pk"):
            template_for.setdefault(template.node_id, template)
        usage = node_usage()
        best = None
        for node in nodes:
            used = usage.get(node.pk, {})
            if node.pk not in template_for:
                continue
            if ((used.get("vcpus") or 0) + spec.vcpus > node.cpu_capacity
                    or (used.get("memory_mib") or 0) + spec.memory_mib > node.ram_capacity_mib
                    or (used.get("disk_gib") or 0) + spec.disk_gib > node.disk_capacity_gib):
                continue
            load = ((used.get("memory_mib") or 0) + spec.memory_mib) / node.ram_capacity_mib
            if best is None or load < best[0]:
                best = (load, node)
        if best is None:
            raise ModuleError(f"No active node has room for {spec.vcpus} vCPU / {spec.memory_mib} MiB / "
                              f"{spec.disk_gib} GiB with the template {os_name or 'any'} in {location or 'any location'}.")
        node = best[1]
        return VirtualMachine.objects.create(
            order=order, node=node, domain=vm_name(order), template=template_for[node.pk], vcpus=spec.vcpus,
            memory_mib=spec.memory_mib, disk_gib=spec.disk_gib, initial_password=secrets.token_urlsafe(12),
            **self._new_vm_fields(order))

    def _vm(self, order: Order) -> VirtualMachine:
        vm = VirtualMachine.objects.select_related("node", "template").filter(order=order).first()
        if vm is None:
            raise NotSupported("This order has no virtual machine.")
        return vm
