"""The customer's server controls (service page and API): live state and power actions.

Each power action is a `ProvisioningJob` (run by Celery, outside any transaction) keyed on the
request id the form carries, so a double submit is one job while two reboots in a row are two. The
action is written to the customer's activity log with the user and client IP. The per-service rate
limit (`SERVER_POWER_RATE_LIMIT`) is counted in Redis by the caller before this runs.
"""
from __future__ import annotations

import logging
import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from .models import Order, ProvisioningJob, VirtualMachine
from .provisioning import Operation, module_for

logger = logging.getLogger(__name__)

Action = ProvisioningJob.Action
POWER_ACTIONS = (Action.START, Action.SHUTDOWN, Action.REBOOT, Action.POWER_OFF)
# A VM keeps running through the grace period after expiry; suspended or ended services are stopped by us.
CONTROLLABLE = (Order.Status.ACTIVE, Order.Status.EXPIRED)
_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


def _machine(order: Order) -> VirtualMachine | None:
    return VirtualMachine.objects.filter(order=order, deleted_at__isnull=True).select_related("node").first()


def server_controllable(order: Order) -> bool:
    return _controllable(order, lambda: _machine(order))


def _controllable(order: Order, machine) -> bool:
    """`machine()`: the order's live VM or None, asked last (after the cheap checks)."""
    module = module_for(order)
    return (module.runs_in_jobs and order.status in CONTROLLABLE
            and Operation.START in module.operations and machine() is not None)


def server_state(*, order: Order) -> dict:
    """What the state panel shows. The hypervisor is asked only here (the htmx panel loads after the
    page); when it cannot answer, the last state a job recorded is shown."""
    vm = _machine(order)
    recent = list(ProvisioningJob.objects.filter(order=order, action__in=POWER_ACTIONS).order_by("-pk")[:5])
    busy = ProvisioningJob.objects.filter(order=order, state__in=(ProvisioningJob.State.QUEUED,
                                                                  ProvisioningJob.State.RUNNING)).exists()
    if order.status == Order.Status.SUSPENDED:
        state = "suspended"
    elif order.status == Order.Status.PENDING:
        state = "setting_up"
    elif vm is None or order.status not in CONTROLLABLE:
        state = "none"
    else:
        try:
            state = module_for(order).status(order)
        except Exception as error:  # hypervisor down: show what we last knew, never the error
            logger.warning("Status of order %s failed: %s", order.pk, error)
            state = vm.state or "unknown"
    return {"state": state, "busy": busy, "recent": recent, "controllable": _controllable(order, lambda: vm),
            "console": Operation.CONSOLE in module_for(order).operations,
            "throttled_mbps": vm.bandwidth_mbps if vm is not None and state not in ("suspended", "none") else None}


def server_power(*, order: Order, action: str, request_id: str, actor, ip: str) -> ProvisioningJob:
    """Queue a power action for the customer's server and log it. Refused (ValidationError, nothing
    changed) for an unknown action, a server that is not running its paid period, or a module that
    cannot do it."""
    if action not in POWER_ACTIONS:
        raise ValidationError(_("Unknown server action."))
    if not _REQUEST_ID.match(request_id or ""):
        raise ValidationError(_("The form has expired. Reload the page and try again."))
    from accounts.services.activity import activity_record

    from .provisioning import jobs

    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).select_related("plan__product_type", "customer").get(pk=order.pk)
        if not server_controllable(order):
            raise ValidationError(_("This server cannot be controlled now."))
        if Operation(action) not in module_for(order).operations:
            raise ValidationError(_("This server does not support that action."))
        key = f"order:{order.pk}:{action}:request:{request_id}"
        existed = ProvisioningJob.objects.filter(idempotency_key=key).exists()
        job = jobs.job_enqueue(order=order, action=action, actor=actor, key=key)
        if not existed:
            activity_record(action="server_power", customer=order.customer, actor=actor, ip=ip,
                            details={"order": order.pk, "action": action, "job": job.pk})
    return job


def reinstall_images(order: Order) -> list:
    """OS images the customer may reinstall with: the plan's (its product type's) active images that
    have a template on the node the server lives on."""
    from .models import OsImage

    images = OsImage.objects.filter(product_types=order.plan.product_type, is_active=True)
    vm = _machine(order)
    if vm is not None and module_for(order).runs_in_jobs:  # hypervisor modules: templates live on nodes
        images = images.filter(templates__node=vm.node, templates__is_active=True)
    return list(images.distinct().order_by("sort_order", "name"))


def server_reinstall(*, order: Order, os_image: str, ssh_key: str, request_id: str, actor, ip: str) -> ProvisioningJob:
    """Queue a reinstall: the disk is replaced with a fresh one from the chosen template and a new root
    password (shown once when the job is done) is set; an SSH key, if given, is installed too. The
    caller has already confirmed the user's password or 2FA code."""
    import secrets

    from accounts.services.activity import activity_record

    from .provisioning import jobs

    if not _REQUEST_ID.match(request_id or ""):
        raise ValidationError(_("The form has expired. Reload the page and try again."))
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).select_related("plan__product_type", "customer").get(pk=order.pk)
        if not server_controllable(order) or Operation.REINSTALL not in module_for(order).operations:
            raise ValidationError(_("This server cannot be reinstalled now."))
        if os_image not in {image.name for image in reinstall_images(order)}:
            raise ValidationError(_("This operating system is not available for your plan."))
        key = f"order:{order.pk}:reinstall:request:{request_id}"
        if ProvisioningJob.objects.filter(idempotency_key=key).exists():
            return ProvisioningJob.objects.get(idempotency_key=key)
        # A new password for the new system (kept across retries of the job; blanked once shown).
        VirtualMachine.objects.filter(order=order, deleted_at__isnull=True).update(
            initial_password=secrets.token_urlsafe(12))
        order.options = {**order.options, "os_image": os_image}
        order.save(update_fields=["options"])
        job = jobs.job_enqueue(order=order, action=Action.REINSTALL, actor=actor, key=key,
                               params={"os_image": os_image, "ssh_keys": [ssh_key] if ssh_key else []})
        activity_record(action="server_reinstall", customer=order.customer, actor=actor, ip=ip,
                        details={"order": order.pk, "os_image": os_image, "job": job.pk})
    return job
