"""Provisioning: how a paid order gets its server, and what the server does over the order's life.

`orders.services` calls the hooks below inside its transactions (the order row locked). For a
database-only module they act at once; for a hypervisor module they queue `ProvisioningJob` rows
that Celery runs after commit (see base.py and jobs.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .base import MachineSpec, ModuleError, NotSupported, Operation, ProvisioningModule, ProvisionResult
from .registry import get_module, module_codes, register_module

if TYPE_CHECKING:
    from accounts.models import User
    from orders.models import Order, Plan

__all__ = ["MachineSpec", "ModuleError", "NotSupported", "Operation", "ProvisionResult", "ProvisioningModule",
           "addon_change_notice", "extra_addresses_sync", "get_module", "module_codes", "module_for", "on_addons_changed", "on_plan_changed", "on_suspended", "on_unsuspended",
           "provision", "register_module", "release"]


def module_for(order: Order) -> ProvisioningModule:
    return get_module(order.plan.module_code)


def _has_machine(order: Order) -> bool:
    from orders.models import ProvisioningJob

    return ProvisioningJob.objects.filter(order=order, action=ProvisioningJob.Action.CREATE).exists()


def provision(order: Order, *, actor: User | None = None) -> ProvisionResult:
    """Payment time (and staff's retry): allocate, and queue the create job for a hypervisor module.
    A create that failed for good is queued again with fresh attempts. Extra addresses bought as
    add-ons are taken from the plan's pool with the main one."""
    from . import jobs

    module = module_for(order)
    result = module.provision(order)
    if result.done or result.queued:
        extra_addresses_sync(order)
    if module.runs_in_jobs and result.queued:
        jobs.job_enqueue(order=order, action=jobs.Action.CREATE, actor=actor, restart_failed=True)
    return result


def extra_addresses_sync(order: Order) -> int:
    """The order holds as many extra addresses as its extra-IPv4 add-on says (taken from or given
    back to the plan's pool); returns how many the pool could not give."""
    from orders.addons import resource_extras

    from .ip_pool import extra_addresses_sync as sync

    return sync(order, resource_extras(order)["ipv4"])


def release(order: Order, *, actor: User | None = None) -> None:
    """The service ended (terminated or cancelled). A VM is terminated by a job, which frees the IP
    once the domain and its disks are gone; without one the address is freed now."""
    from . import jobs
    from .ip_pool import address_release

    module = module_for(order)
    if module.runs_in_jobs and _has_machine(order):
        jobs.job_enqueue(order=order, action=jobs.Action.TERMINATE, actor=actor)
        return
    module.release(order)
    address_release(order)


def on_suspended(order: Order, *, actor: User | None = None) -> None:
    """Suspension (staff, or unpaid after the grace period): the VM is really stopped."""
    from . import jobs

    if module_for(order).runs_in_jobs and _has_machine(order):
        jobs.job_enqueue(order=order, action=jobs.Action.SUSPEND, actor=actor)


def on_unsuspended(order: Order, *, actor: User | None = None) -> None:
    """Staff unsuspended it, or a renewal paid for a suspended service: the VM starts again."""
    from . import jobs

    if module_for(order).runs_in_jobs and _has_machine(order):
        jobs.job_enqueue(order=order, action=jobs.Action.UNSUSPEND, actor=actor)


def on_plan_changed(order: Order, *, old_plan: Plan, actor: User | None = None) -> None:
    """The plan changed (paid upgrade, or a downgrade at renewal): resize the VM to the new plan."""
    _resize(order, actor=actor)


MACHINE_ADDON_KINDS = frozenset({"cpu", "ram", "disk"})


def on_addons_changed(order: Order, *, kind: str, actor: User | None = None) -> int:
    """An add-on of `kind` changed on a running service (paid, or removed): extra addresses are taken
    or given back now (in this transaction); a VM is resized to plan + extra vCPU/RAM/disk by a job
    that runs after commit. Returns how many extra addresses the pool could not give."""
    missing = extra_addresses_sync(order) if kind == "ipv4" else 0
    if kind in MACHINE_ADDON_KINDS:
        _resize(order, actor=actor)
    return missing


def _resize(order: Order, *, actor: User | None) -> None:
    """Queue a resize of the VM to what the order now pays for (plan + resource add-ons)."""
    from . import jobs

    module = module_for(order)
    if module.runs_in_jobs and _has_machine(order):
        spec = module.order_spec(order)
        jobs.job_enqueue(order=order, action=jobs.Action.RESIZE, actor=actor,
                         params={"vcpus": spec.vcpus, "memory_mib": spec.memory_mib, "disk_gib": spec.disk_gib,
                                 "plan": order.plan_id})


def plan_change_notice(order: Order, plan: Plan) -> str:
    """What the customer is told before confirming a plan change (restart, disk that cannot shrink)."""
    from django.utils.translation import gettext as _

    module = module_for(order)
    if not module.runs_in_jobs or not _has_machine(order):
        return ""
    old, new = module.order_spec(order), module.order_spec(order, plan=plan)
    notes = []
    if module.resize_needs_reboot(old, new):
        notes.append(_("Your server restarts once to apply the new CPU and memory."))
    if new.disk_gib < old.disk_gib:
        notes.append(_("Disks cannot shrink: your server keeps its %(size)s GiB disk.") % {"size": old.disk_gib})
    return " ".join(notes)


def addon_change_notice(order: Order, kind: str) -> str:
    """What the customer is told before confirming an add-on change: a restart for more CPU or RAM."""
    from django.utils.translation import gettext as _

    module = module_for(order)
    if kind in ("cpu", "ram") and module.runs_in_jobs and _has_machine(order):
        return _("Your server restarts once to apply the new CPU and memory.")
    return ""
