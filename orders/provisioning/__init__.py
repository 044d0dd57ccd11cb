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
           "get_module", "module_codes", "module_for", "on_plan_changed", "on_suspended", "on_unsuspended",
           "provision", "register_module", "release"]


def module_for(order: Order) -> ProvisioningModule:
    return get_module(order.plan.module_code)


def _has_machine(order: Order) -> bool:
    from orders.models import ProvisioningJob

    return ProvisioningJob.objects.filter(order=order, action=ProvisioningJob.Action.CREATE).exists()


def provision(order: Order, *, actor: User | None = None) -> ProvisionResult:
    """Payment time (and staff's retry): allocate, and queue the create job for a hypervisor module.
    A create that failed for good is queued again with fresh attempts."""
    from . import jobs

    module = module_for(order)
    result = module.provision(order)
    if module.runs_in_jobs and result.queued:
        jobs.job_enqueue(order=order, action=jobs.Action.CREATE, actor=actor, restart_failed=True)
    return result


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
    from . import jobs

    module = module_for(order)
    if module.runs_in_jobs and _has_machine(order):
        spec = module.machine_spec(order.plan)
        jobs.job_enqueue(order=order, action=jobs.Action.RESIZE, actor=actor,
                         params={"vcpus": spec.vcpus, "memory_mib": spec.memory_mib, "disk_gib": spec.disk_gib,
                                 "plan": order.plan_id})


def plan_change_notice(order: Order, plan: Plan) -> str:
    """What the customer is told before confirming a plan change (restart, disk that cannot shrink)."""
    from django.utils.translation import gettext as _

    module = module_for(order)
    if not module.runs_in_jobs or not _has_machine(order):
        return ""
    old, new = module.machine_spec(order.plan), module.machine_spec(plan)
    notes = []
    if module.resize_needs_reboot(old, new):
        notes.append(_("Your server restarts once to apply the new CPU and memory."))
    if new.disk_gib < old.disk_gib:
        notes.append(_("Disks cannot shrink: your server keeps its %(size)s GiB disk.") % {"size": old.disk_gib})
    return " ".join(notes)
