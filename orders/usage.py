"""Server usage: hypervisor counters sampled by beat into `UsageSample`, turned into 24-hour and
30-day graphs (core.charts geometry) and the traffic used in the current traffic period (monthly).

Counters are cumulative; a graph bucket holds the sum of deltas between consecutive samples ending in
it, and a counter that went down (the VM restarted) counts from zero. Samples older than a day are
thinned to the last one of each hour, which keeps every hourly delta exact.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from core.charts import bar_geometry
from core.compiled import STAND_IN, CompiledQuery

from .models import Order, UsageSample, VirtualMachine
from .provisioning import Operation, module_for

logger = logging.getLogger(__name__)
GIB = Decimal(1024 ** 3)
COUNTERS = ("cpu_time_ns", "net_rx_bytes", "net_tx_bytes", "disk_read_bytes", "disk_write_bytes")


def usage_sample_all(*, now=None) -> int:
    """Beat: one sample per running VM of an active (or grace-period) service; then thin old samples.
    The hypervisor is called outside any transaction; a VM that cannot be read is skipped (logged)."""
    now = now or timezone.now()
    taken = 0
    vms = (VirtualMachine.objects.filter(deleted_at__isnull=True, order__status__in=(Order.Status.ACTIVE, Order.Status.EXPIRED))
           .select_related("order__plan__product_type", "node"))
    for vm in vms:
        module = module_for(vm.order)
        if Operation.USAGE not in module.operations:
            continue
        try:
            sample = module.usage_sample(vm.order)
        except Exception as error:  # noqa: BLE001 - one broken node must not stop the others
            logger.warning("Usage of order %s not sampled: %s", vm.order_id, error)
            continue
        UsageSample.objects.create(vm=vm, taken_at=now, **{name: getattr(sample, name) for name in COUNTERS})
        taken += 1
    usage_downsample(now=now)
    return taken


def usage_downsample(*, now=None) -> int:
    """Keep only the last sample of each hour (and a VM's first) for samples older than a day (one statement)."""
    cutoff = (now or timezone.now()) - timedelta(days=1)
    table = UsageSample._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} s WHERE s.taken_at < %s AND EXISTS (SELECT 1 FROM {table} t WHERE t.vm_id = s.vm_id"
            f" AND date_trunc('hour', t.taken_at AT TIME ZONE 'UTC') = date_trunc('hour', s.taken_at AT TIME ZONE 'UTC')"
            f" AND t.taken_at > s.taken_at)"
            # A VM's first sample stays: it is the base of the first hour's delta.
            f" AND EXISTS (SELECT 1 FROM {table} f WHERE f.vm_id = s.vm_id AND f.taken_at < s.taken_at)", [cutoff])
        return cursor.rowcount


def _deltas(samples: list[UsageSample]):
    """(time of the later sample, {counter: delta}) for consecutive samples; a reset counts from zero."""
    for previous, current in zip(samples, samples[1:]):
        yield current.taken_at, {name: (getattr(current, name) - getattr(previous, name))
                                 if getattr(current, name) >= getattr(previous, name) else getattr(current, name)
                                 for name in COUNTERS}


_LOOKUP = object()  # `vm` not given: looked up


def usage_vm(order: Order) -> VirtualMachine | None:
    """The order's live VM, whose samples the graphs and the traffic count read (the usage card looks it
    up once and passes it to each as `vm`)."""
    found = _USAGE_VM(order_id=order.pk)
    return found[0] if found else None


# usage_vm's `.first()` (by pk: the model has no ordering), compiled once (core.compiled).
_USAGE_VM = CompiledQuery(lambda order_id: VirtualMachine.objects.filter(order_id=order_id, deleted_at__isnull=True).order_by("pk")[:1],
                          order_id=STAND_IN)


def _samples(order: Order, since, vm=_LOOKUP):
    # One sample before the window too, so the first bucket has its delta.
    if vm is _LOOKUP:
        vm = usage_vm(order)
    if vm is None:
        return []
    before = UsageSample.objects.filter(vm=vm, taken_at__lt=since).order_by("-taken_at").first()
    rows = list(UsageSample.objects.filter(vm=vm, taken_at__gte=since).order_by("taken_at"))
    return ([before] if before else []) + rows


def traffic_period(order: Order, *, now=None) -> tuple | None:
    """The service's current traffic period: its monthly cycle from its anchor (the activation, or the
    restart after a lapse), [anchor + k months, anchor + k + 1 months) around `now`, on the customer's
    calendar like its expiry. The plan's quota is per month; for monthly billing this is exactly the
    billing period, and it moves on by itself whether the order was renewed early or not."""
    from .pricing import add_months, order_zone

    if order.anchor_at is None:
        return None
    now = now or timezone.now()
    zone = order_zone(order)
    anchor, local_now = timezone.localtime(order.anchor_at, zone), timezone.localtime(now, zone)
    months = max(0, (local_now.year - anchor.year) * 12 + local_now.month - anchor.month)
    while months > 0 and add_months(order.anchor_at, months, zone) > now:
        months -= 1
    while add_months(order.anchor_at, months + 1, zone) <= now:
        months += 1
    return add_months(order.anchor_at, months, zone), add_months(order.anchor_at, months + 1, zone)


def traffic_used_bytes(order: Order, *, now=None, vm=_LOOKUP) -> int:
    """Network bytes in + out in the current traffic period."""
    period = traffic_period(order, now=now)
    if period is None:
        return 0
    return sum(delta["net_rx_bytes"] + delta["net_tx_bytes"] for _at, delta in _deltas(_samples(order, period[0], vm)))


def usage_series(order: Order, *, now=None, days: int | None = None, vm=_LOOKUP) -> list[tuple]:
    """[(bucket start, network GiB, CPU seconds)]: 24 hourly buckets, or `days` daily ones."""
    now = now or timezone.now()
    step = timedelta(days=1) if days else timedelta(hours=1)
    count = days or 24
    if days:
        end = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0) + step
    else:
        end = now.replace(minute=0, second=0, microsecond=0) + step
    start = end - step * count
    buckets = [[start + step * index, 0, 0] for index in range(count)]
    for at, delta in _deltas(_samples(order, start, vm)):
        index = int((at - start) / step)
        if 0 <= index < count:
            buckets[index][1] += delta["net_rx_bytes"] + delta["net_tx_bytes"]
            buckets[index][2] += delta["cpu_time_ns"]
    return [(at, Decimal(net) / GIB, Decimal(cpu) / Decimal(10 ** 9)) for at, net, cpu in buckets]


def _gib(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))} GiB" if value < 10 else f"{value.quantize(Decimal('1'))} GiB"


def usage_chart(order: Order, *, days: int | None = None, now=None, vm=_LOOKUP) -> dict:
    """Geometry and labels for orders/_usage_chart.html (network traffic per bucket)."""
    from core.jinja import memo_date  # local time, localized format; each bucket's label made once per language

    series = usage_series(order, now=now, days=days, vm=vm)
    chart = bar_geometry([net for _at, net, _cpu in series], tick_label=_gib, bar_share=0.7)
    text = _("%(net)s, CPU %(cpu)s s")  # translated once, not per bar
    for index, (bar, (at, net, cpu)) in enumerate(zip(chart["bars"], series)):
        label = (memo_date(at, "j") if days else timezone.localtime(at).strftime("%H")) if index % (3 if days else 4) == 0 else ""
        bar.update(label=label,
                   long_label=memo_date(at, "SHORT_DATE_FORMAT" if days else "SHORT_DATETIME_FORMAT"),
                   text=text % {"net": _gib(net), "cpu": cpu.quantize(Decimal("1"))})
    chart["id"] = "usage-30d" if days else "usage-24h"
    chart["title"] = _("Network traffic, last 30 days") if days else _("Network traffic, last 24 hours")
    return chart


def traffic_summary(order: Order, *, vm=_LOOKUP) -> dict:
    used = traffic_used_bytes(order, vm=vm)
    quota = order.plan.traffic_tb
    quota_bytes = int(quota * 1024 ** 4) if quota else None
    period = traffic_period(order)
    return {"used_gib": Decimal(used) / GIB, "quota_tb": quota, "over": bool(quota_bytes and used > quota_bytes),
            "percent": min(100, int(used * 100 / quota_bytes)) if quota_bytes else None,
            "period_ends": period[1] if period else None}
