"""Provisioning jobs: every call of a hypervisor module runs on a `ProvisioningJob` row.

- `job_enqueue` (inside the caller's transaction, the order locked) inserts the row under an
  idempotency key built from stable values, and queues the Celery task after commit;
- `job_run` (the task) claims the row with one committed UPDATE (of two racing workers exactly one
  runs it), calls the module outside any transaction, then records the outcome and its effect on the
  order. Jobs of one order run in the order they were queued: a job waits while an earlier one of its
  order is queued or running;
- failures back off exponentially up to PROVISIONING_JOB_MAX_ATTEMPTS, then the job fails and staff
  retry it from admin (`jobs_retry`);
- `jobs_sweep` (beat) requeues rows whose worker died mid-call and queues rows never picked up
  (broker down at commit). Module operations reconcile, so running one twice is harmless.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from core.enqueue import enqueue_task_on_commit
from orders.models import Order, OrderEvent, ProvisioningJob, VirtualMachine

from .base import MachineSpec
from .registry import get_module

logger = logging.getLogger(__name__)

Action = ProvisioningJob.Action
State = ProvisioningJob.State
UNFINISHED = (State.QUEUED, State.RUNNING)
ENDED = (Order.Status.TERMINATED, Order.Status.CANCELLED)
# The order's VM state after each action succeeded (what staff see until the next status check).
STATE_AFTER = {Action.CREATE: "running", Action.START: "running", Action.REBOOT: "running",
               Action.UNSUSPEND: "running", Action.REINSTALL: "running", Action.RESIZE: "running",
               Action.SHUTDOWN: "stopped", Action.POWER_OFF: "stopped", Action.SUSPEND: "stopped",
               Action.TERMINATE: "deleted"}  # a bandwidth change leaves the state as it was


def _source(actor) -> str:
    if actor is None:
        return OrderEvent.Source.SYSTEM
    return OrderEvent.Source.STAFF if actor.is_staff and actor.customer_id is None else OrderEvent.Source.CUSTOMER


def job_key(*, order: Order, action: str) -> str:
    """Create and terminate happen once per order. A resize (each one follows a paid plan change, applied
    once) is keyed on the order's latest job. Other actions are keyed on the latest job of another
    action: the same request twice in a row (double click, a retried hook) is one job, while a suspend
    after an unsuspend is a new one. Callers hold the order's row lock, so the latest job is stable."""
    if action in (Action.CREATE, Action.TERMINATE):
        return f"order:{order.pk}:{action}"
    previous = ProvisioningJob.objects.filter(order=order)
    if action != Action.RESIZE:
        previous = previous.exclude(action=action)
    latest = previous.order_by("-pk").values_list("pk", flat=True).first()
    return f"order:{order.pk}:{action}:after:{latest or 0}"


def job_enqueue(*, order: Order, action: str, actor=None, params: dict | None = None,
                restart_failed: bool = False, key: str | None = None) -> ProvisioningJob:
    """Queue a module call for `order` (call inside a transaction holding the order's lock). Returns
    the existing job when the key is taken; a failed one is restarted if `restart_failed`. A customer's
    request passes its own `key` (from the form's request id): two reboots in a row are two jobs."""
    key = key or job_key(order=order, action=action)
    job = ProvisioningJob.objects.filter(idempotency_key=key).first()
    if job is None:
        job = ProvisioningJob(order=order, action=action, module=order.plan.module_code, params=params or {},
                              idempotency_key=key, requested_by=actor if actor is not None and actor.pk else None,
                              source=_source(actor), next_attempt_at=timezone.now())
        try:
            with transaction.atomic():
                job.save()
        except IntegrityError:  # a concurrent twin inserted it first
            return ProvisioningJob.objects.get(idempotency_key=key)
    elif restart_failed and job.state in (State.FAILED, State.CANCELLED):
        _restart(job)
    else:
        return job
    if action == Action.TERMINATE:
        # Nothing queued before a termination is worth doing (a create still backing off, a resize).
        ProvisioningJob.objects.filter(order=order, state=State.QUEUED, pk__lt=job.pk).update(
            state=State.CANCELLED, finished_at=timezone.now(), last_error="Superseded by termination.")
    _run_after_commit(job.pk)
    return job


def _restart(job: ProvisioningJob) -> None:
    ProvisioningJob.objects.filter(pk=job.pk).update(state=State.QUEUED, attempts=0, next_attempt_at=timezone.now(),
                                                     claimed_at=None, finished_at=None)
    job.refresh_from_db()


def _run_after_commit(job_id: int) -> None:
    from orders.tasks import provisioning_job_task

    enqueue_task_on_commit(provisioning_job_task, job_id=job_id)


def _earlier_unfinished():
    return ProvisioningJob.objects.filter(order_id=OuterRef("order_id"), pk__lt=OuterRef("pk"), state__in=UNFINISHED)


def _claim(job_id: int) -> bool:
    now = timezone.now()
    with transaction.atomic():
        return bool(ProvisioningJob.objects.filter(pk=job_id, state=State.QUEUED, next_attempt_at__lte=now)
                    .filter(~Exists(_earlier_unfinished()))
                    .update(state=State.RUNNING, claimed_at=now, attempts=F("attempts") + 1))


class _OutOfAttempts(Exception):
    retryable = False


def job_run(*, job_id: int) -> str:
    """Run one job if it is due and ours. Returns "done", "retry", "failed", "cancelled" (the service
    ended: a retried create must not make a VM for it) or "skipped"."""
    if not _claim(job_id):
        return "skipped"
    job = ProvisioningJob.objects.select_related("order__plan__product_type", "order__customer").get(pk=job_id)
    if job.attempts > settings.PROVISIONING_JOB_MAX_ATTEMPTS:  # its workers kept dying (swept back each time)
        return _record_failure(job, _OutOfAttempts("Worker lost while running; out of attempts."))
    if job.order.status in ENDED and job.action != Action.TERMINATE:
        return _record_cancelled(job, "The service has ended; only its termination runs.")
    module = get_module(job.module)
    try:
        result = _call(module, job)
    except Exception as error:  # hypervisor, network, time limit: recorded, retried with back-off
        return _record_failure(job, error)
    _record_success(job, result)
    return "done"


def _call(module, job: ProvisioningJob):
    order = job.order
    if job.action == Action.CREATE:
        return module.create(order)
    if job.action == Action.RESIZE:
        return module.resize(order, MachineSpec(vcpus=job.params["vcpus"], memory_mib=job.params["memory_mib"],
                                                disk_gib=job.params["disk_gib"]))
    if job.action == Action.REINSTALL:
        return module.reinstall(order, os_image=job.params["os_image"], ssh_keys=job.params.get("ssh_keys", []),
                                instance_id=f"job-{job.pk}")
    if job.action == Action.BANDWIDTH:
        return module.set_bandwidth(order, job.params.get("mbps"))
    return getattr(module, job.action)(order)


@transaction.atomic
def _record_success(job: ProvisioningJob, result) -> None:
    from orders.services import placing

    from .ip_pool import address_release

    order = Order.objects.select_for_update(of=("self",)).select_related("plan", "customer").get(pk=job.order_id)
    ProvisioningJob.objects.filter(pk=job.pk, state__in=UNFINISHED).update(
        state=State.DONE, finished_at=timezone.now(), claimed_at=None, last_error="")
    vm_fields = {"state": STATE_AFTER[job.action]} if job.action in STATE_AFTER else {}
    if job.action == Action.TERMINATE:
        vm_fields["deleted_at"] = timezone.now()
        address_release(order)  # only now: the address was in use until the domain was gone
    if job.action == Action.RESIZE:
        vm_fields.update(vcpus=job.params["vcpus"], memory_mib=job.params["memory_mib"],
                         disk_gib=max(job.params["disk_gib"], getattr(result, "disk_kept_gib", None) or 0))
    if job.action == Action.BANDWIDTH:
        vm_fields["bandwidth_mbps"] = job.params.get("mbps")
    if vm_fields:
        VirtualMachine.objects.filter(order=order, deleted_at__isnull=True).update(**vm_fields)
    if job.action == Action.CREATE:
        placing.order_provisioned(order=order, ip=result)
    _run_next(order)


@transaction.atomic
def _record_cancelled(job: ProvisioningJob, reason: str) -> str:
    order = Order.objects.select_for_update(of=("self",)).get(pk=job.order_id)
    ProvisioningJob.objects.filter(pk=job.pk, state=State.RUNNING).update(
        state=State.CANCELLED, claimed_at=None, finished_at=timezone.now(), last_error=reason)
    _run_next(order)
    return "cancelled"


def _run_next(order: Order) -> None:
    following = (ProvisioningJob.objects.filter(order=order, state=State.QUEUED, next_attempt_at__lte=timezone.now())
                 .order_by("pk").values_list("pk", flat=True).first())
    if following:
        _run_after_commit(following)


def retry_delay_seconds(attempts: int) -> int:
    base = settings.PROVISIONING_RETRY_BASE_SECONDS
    return min(base * 2 ** max(attempts - 1, 0), settings.PROVISIONING_RETRY_MAX_SECONDS)


@transaction.atomic
def _record_failure(job: ProvisioningJob, error: Exception) -> str:
    from orders.services import placing

    message = f"{type(error).__name__}: {error}"[:2000]
    # Module errors never carry secrets (passwords live only in the VM row and the seed image).
    logger.warning("Provisioning job %s (%s, order %s) failed, attempt %s: %s",
                   job.pk, job.action, job.order_id, job.attempts, message)
    order = Order.objects.select_for_update(of=("self",)).select_related("plan", "customer").get(pk=job.order_id)
    retry = getattr(error, "retryable", True) and job.attempts < settings.PROVISIONING_JOB_MAX_ATTEMPTS
    now = timezone.now()
    if retry:
        delay = retry_delay_seconds(job.attempts)
        ProvisioningJob.objects.filter(pk=job.pk, state=State.RUNNING).update(
            state=State.QUEUED, claimed_at=None, last_error=message, next_attempt_at=now + timedelta(seconds=delay))
    else:
        ProvisioningJob.objects.filter(pk=job.pk, state=State.RUNNING).update(
            state=State.FAILED, claimed_at=None, last_error=message, finished_at=now)
        _run_next(order)
    if job.action == Action.CREATE:
        placing.order_provisioning_failed(order=order, error=message, final=not retry)
    return "retry" if retry else "failed"


def jobs_sweep(*, now=None) -> list[int]:
    """Requeue jobs whose worker died mid-call and return the ids due for running (beat)."""
    now = now or timezone.now()
    stuck_before = now - timedelta(seconds=settings.PROVISIONING_JOB_STUCK_SECONDS)
    with transaction.atomic():
        lost = ProvisioningJob.objects.filter(state=State.RUNNING, claimed_at__lt=stuck_before)
        for job_id in lost.values_list("pk", flat=True):
            logger.warning("Provisioning job %s lost its worker; requeued.", job_id)
        lost.update(state=State.QUEUED, claimed_at=None, next_attempt_at=now,
                    last_error="Worker lost while running; retrying.")
    due_before = now - timedelta(seconds=settings.PROVISIONING_JOB_PENDING_GRACE_SECONDS)
    return list(
        ProvisioningJob.objects.filter(state=State.QUEUED)
        .filter(Q(attempts=0, next_attempt_at__lte=due_before) | Q(attempts__gt=0, next_attempt_at__lte=now))
        .filter(~Exists(_earlier_unfinished()))
        .order_by("next_attempt_at", "pk").values_list("pk", flat=True)[: settings.PROVISIONING_JOB_SWEEP_BATCH]
    )


@transaction.atomic
def jobs_retry(*, job_ids: list[int], actor) -> int:
    """Staff: failed or cancelled jobs get a fresh set of attempts and run now."""
    from orders.services import common, placing

    # Lock order as everywhere: orders (pk order), then their jobs.
    order_ids = set(ProvisioningJob.objects.filter(pk__in=job_ids).values_list("order_id", flat=True))
    orders = {o.pk: o for o in Order.objects.select_for_update(of=("self",)).select_related("customer")
              .filter(pk__in=order_ids).order_by("pk")}
    jobs = list(ProvisioningJob.objects.select_for_update().filter(pk__in=job_ids, state__in=[State.FAILED, State.CANCELLED])
                .order_by("pk"))
    for job in jobs:
        order = orders[job.order_id]
        _restart(job)
        if job.action == Action.CREATE:
            placing.order_provisioning_failed(order=order, error="", final=False, retrying=True)
        common.staff_audit_record(order=order, actor=actor, action="provisioning_job_retry",
                       details={"job": job.pk, "action": job.action})
        _run_after_commit(job.pk)
    return len(jobs)


@transaction.atomic
def vm_password_take(*, order: Order, actor) -> str:
    """The VM's initial root password, once: it is blanked as it is read (customer's POST)."""
    vm = VirtualMachine.objects.select_for_update().filter(order=order, deleted_at__isnull=True).first()
    if vm is None or not vm.initial_password or order.status != Order.Status.ACTIVE:
        return ""
    password = vm.initial_password
    vm.initial_password = ""
    vm.save(update_fields=["initial_password"])
    from accounts.services.activity import activity_record

    activity_record(action="root_password_shown", customer=order.customer, actor=actor, visible_to_customer=True,
                    details={"order": order.pk})
    return password
