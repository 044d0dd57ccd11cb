"""Traffic past the plan's quota: a notice once per billing period, and the plan's rule applied
through the provisioning module (`Plan.over_quota_action`: notice only, or throttle to
`Plan.over_quota_mbps`).

`traffic_quota_check_all` runs in the usage beat job (`orders-usage-sample`, every 5 minutes) right
after the sampling round; `traffic_quota_check` is the same rule for one order, under its row lock:

- The period is the service's traffic period (`usage.traffic_period`: its monthly cycle from the
  order's anchor, the billing period for monthly billing; the plan's quota is per month).
- Over the quota (the period's traffic > `Plan.traffic_tb`): a `TrafficOverage` row for (order,
  period start) is inserted. Its unique constraint makes that once per period however often or
  concurrently the check runs, and only the run that inserted it notifies the customer (kind
  `traffic_over_quota`, which follows the customer's notification settings; its dedupe key
  `order:<id>:traffic:<period start>:over_quota` is a second guard).
- The wanted limit: the current plan's `over_quota_mbps` while the service is over its current plan's
  quota in the current period and that plan says throttle; otherwise none. So a throttle is lifted
  by the first check after the next period starts (traffic counts from zero again), or earlier when
  a plan change raises the quota above the traffic used or switches the plan to notice only.
- When the VM's applied limit (`VirtualMachine.bandwidth_mbps`, written when a job succeeds) differs
  from the wanted one, a `bandwidth` provisioning job applies it through the module (libvirt:
  interface bandwidth; Proxmox VE: net0 rate). At most one such job is unfinished per order; a failed
  one is not re-queued by the check (staff retry it from the jobs list).
"""
from __future__ import annotations

import logging
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.urls import reverse

from .models import Order, Plan, ProvisioningJob, TrafficOverage, VirtualMachine
from .provisioning import Operation, module_for
from .usage import GIB, traffic_period, traffic_used_bytes

logger = logging.getLogger(__name__)

LIVE = (Order.Status.ACTIVE, Order.Status.EXPIRED)
TIB = 1024 ** 4


def quota_bytes(plan: Plan) -> int | None:
    return int(plan.traffic_tb * TIB) if plan.traffic_tb is not None else None


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def traffic_quota_check_all(*, now=None) -> dict[str, int]:
    """Beat: every live VM of an active (or grace-period) service with a quota, or with a limit to lift."""
    from django.db.models import Q

    counts = {"checked": 0, "notified": 0, "jobs": 0}
    order_ids = (VirtualMachine.objects.filter(deleted_at__isnull=True, order__status__in=LIVE)
                 .filter(Q(order__plan__traffic_tb__isnull=False) | Q(bandwidth_mbps__isnull=False))
                 .order_by("order_id").values_list("order_id", flat=True))
    for order_id in order_ids:
        try:
            outcome = traffic_quota_check(order_id=order_id, now=now)
        except Exception:  # noqa: BLE001 - one broken service must not stop the others
            logger.exception("Traffic quota of order %s not checked", order_id)
            continue
        counts["checked"] += 1
        counts["notified"] += outcome["notified"]
        counts["jobs"] += outcome["job"] is not None
    return counts


@transaction.atomic
def traffic_quota_check(*, order_id: int, now=None) -> dict:
    """Apply the rule to one service: {"notified": bool, "job": the bandwidth job queued or None}."""
    order = (Order.objects.select_for_update(of=("self",)).select_related("plan__product_type", "customer")
             .get(pk=order_id))
    vm = VirtualMachine.objects.filter(order=order, deleted_at__isnull=True).first()
    period = traffic_period(order, now=now)
    if order.status not in LIVE or vm is None or period is None:
        return {"notified": False, "job": None}
    plan = order.plan
    quota = quota_bytes(plan)
    overage = TrafficOverage.objects.filter(order=order, period_start=period[0]).first()
    notified = False
    if quota is None:
        over = False
    elif overage is not None and overage.used_bytes > quota:
        over = True  # traffic only grows within a period: no need to count it again
    else:
        used = traffic_used_bytes(order, now=now)
        over = used > quota
        if over and overage is None:
            notified = _overage_record(order, period=period, used=used, quota=quota)
    wanted = plan.over_quota_mbps if over and plan.over_quota_action == Plan.OverQuotaAction.THROTTLE else None
    return {"notified": notified, "job": _bandwidth_apply(order, vm, wanted)}


def _overage_record(order: Order, *, period: tuple, used: int, quota: int) -> bool:
    from notifications.kinds import Kind
    from notifications.services import notify

    from .services.common import date_for_customer, order_label

    plan = order.plan
    try:
        with transaction.atomic():  # savepoint: a concurrent twin's row wins, this run sends nothing
            TrafficOverage.objects.create(order=order, period_start=period[0], used_bytes=used, quota_bytes=quota,
                                          action=plan.over_quota_action)
    except IntegrityError:
        return False
    throttle = plan.over_quota_mbps if plan.over_quota_action == Plan.OverQuotaAction.THROTTLE else None
    notify(customer=order.customer, kind=Kind.TRAFFIC_OVER_QUOTA, link=reverse("orders:order_detail", args=[order.pk]),
           dedupe_key=f"order:{order.pk}:traffic:{period[0].isoformat()}:over_quota",
           context={"service": order_label(order), "used_gib": str((Decimal(used) / GIB).quantize(Decimal("0.01"))),
                    "quota_tb": _plain(plan.traffic_tb), "throttle_mbps": str(throttle or ""),
                    "period_started": date_for_customer(period[0], order.customer), "period_ends": date_for_customer(period[1], order.customer)})
    return True


def _bandwidth_apply(order: Order, vm: VirtualMachine, wanted: int | None) -> ProvisioningJob | None:
    from .provisioning import jobs

    if vm.bandwidth_mbps == wanted or Operation.BANDWIDTH not in module_for(order).operations:
        return None
    Action, State = ProvisioningJob.Action, ProvisioningJob.State
    latest = ProvisioningJob.objects.filter(order=order, action=Action.BANDWIDTH).order_by("-pk").first()
    if latest is not None and (latest.state in (State.QUEUED, State.RUNNING)
                               or (latest.state == State.FAILED and latest.params.get("mbps") == wanted)):
        return None
    key = f"order:{order.pk}:bandwidth:{wanted or 'unlimited'}:after:{latest.pk if latest else 0}"
    return jobs.job_enqueue(order=order, action=Action.BANDWIDTH, params={"mbps": wanted}, key=key)


def traffic_throttle(order: Order, *, vm=None) -> dict | None:
    """The service page's "throttled" state: the limit applied on the VM, and when its period ends
    (`vm`: the order's live VM when the caller has it, else looked up)."""
    if vm is None:
        vm = VirtualMachine.objects.filter(order=order, deleted_at__isnull=True).only("bandwidth_mbps").first()
    if vm is None or not vm.bandwidth_mbps:
        return None
    period = traffic_period(order)
    return {"mbps": vm.bandwidth_mbps, "until": period[1] if period else None}
