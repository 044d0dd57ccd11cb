"""Usage sampling from the real hypervisor, deltas across counter resets, thinning after a day,
the graphs on the service page and traffic against the plan's quota."""
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from orders.models import Order, UsageSample, VirtualMachine
from orders.usage import traffic_used_bytes, usage_downsample, usage_sample_all, usage_series

from .hypervisor import hypervisor, kvm, kvm_node, kvm_plan  # noqa: F401
from .test_provisioning_libvirt import active_order
from .test_server_control import server, setting_up  # noqa: F401

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=dt_timezone.utc)
GIB = 1024 ** 3


def sample(vm, at, net_rx, cpu=0):
    return UsageSample.objects.create(vm=vm, taken_at=at, cpu_time_ns=cpu, net_rx_bytes=net_rx, net_tx_bytes=0,
                                      disk_read_bytes=0, disk_write_bytes=0)


@time_machine.travel(T0, tick=True)
def test_the_beat_job_samples_running_vms_from_the_hypervisor(customer, fund, kvm, kvm_plan):  # noqa: F811
    order = active_order(customer, fund, kvm_plan)
    assert usage_sample_all() == 1
    row = UsageSample.objects.get()
    assert row.vm.order == order and row.cpu_time_ns > 0  # the VM really ran (TCG) for a moment


@time_machine.travel(T0, tick=False)
def test_deltas_survive_a_counter_reset_and_thinning_keeps_hourly_totals(server):
    vm = VirtualMachine.objects.get(order=server)
    start = T0 - timedelta(days=2)
    # Every 15 minutes for 2 days: 1 GiB per sample, with a restart (counter back to 0) half-way.
    value = 0
    for step in range(2 * 24 * 4 + 1):
        value = GIB if step == 96 else value + GIB
        sample(vm, start + timedelta(minutes=15 * step), value)
    daily_before = usage_series(server, days=30)
    hourly_before = usage_series(server)
    # 24 hourly buckets ending with the current hour (09:00-10:00 holds only the 09:00 sample).
    assert [net for _at, net, _cpu in hourly_before] == [Decimal(4)] * 23 + [Decimal(1)]
    deleted = usage_downsample()
    assert deleted == 24 * 3 - 1  # older than a day: 3 of each hour's 4 samples go (the very first stays)
    assert usage_series(server, days=30) == daily_before and usage_series(server) == hourly_before
    server.anchor_at = start  # the traffic period is the month from the anchor
    assert traffic_used_bytes(server) == 2 * 24 * 4 * GIB


@time_machine.travel(T0, tick=False)
def test_the_service_page_shows_the_graphs_and_the_traffic_quota(client, owner, server):
    vm = VirtualMachine.objects.get(order=server)
    server.plan.traffic_tb = Decimal("0.01")  # about 10 GiB
    server.plan.save(update_fields=["traffic_tb"])
    Order.objects.filter(pk=server.pk).update(anchor_at=T0 - timedelta(hours=3))
    sample(vm, T0 - timedelta(hours=4), 0)  # the base the period's first delta is counted from
    sample(vm, T0 - timedelta(hours=2), 3 * GIB)
    sample(vm, T0 - timedelta(hours=1), 15 * GIB, cpu=5 * 10 ** 9)
    client.force_login(owner)
    page = client.get(reverse("orders:order_detail", args=[server.pk])).content.decode()
    assert "server/usage/" in page
    usage = client.get(reverse("orders:server_usage", args=[server.pk]), headers={"HX-Request": "true"}).content.decode()
    assert 'data-testid="usage-24h"' in usage and 'data-testid="usage-30d"' in usage and "<rect" in usage
    assert "12 GiB, CPU 5 s" in usage
    assert "Traffic this period: 15.00 GiB of 0.01 TB" in usage and 'data-testid="traffic-over"' in usage


def test_compiled_order_get_and_usage_vm_read_what_the_orm_reads(server):
    from django.http import Http404

    from accounts.tests.factories import UserFactory
    from orders.selectors import _orders_to_get, order_get
    from orders.usage import usage_vm

    customer = server.customer
    for with_vm in (False, True):
        found = order_get(customer=customer, order_id=server.pk, with_vm=with_vm, plan_locations=False)
        expected = _orders_to_get(with_vm, False).get(customer=customer, pk=server.pk)
        assert found.__dict__.keys() - {"_state"} == expected.__dict__.keys() - {"_state"}
        assert [getattr(found, name) for name in expected.__dict__ if name != "_state"] == [
            getattr(expected, name) for name in expected.__dict__ if name != "_state"]
        assert (found.plan, found.plan.product_type, found.scheduled_plan) == (expected.plan, expected.plan.product_type, expected.scheduled_plan)
        assert Order.vm.is_cached(found) is with_vm and (not with_vm or found.vm == expected.vm)
        assert found.customer is customer
        with pytest.raises(Http404):
            order_get(customer=UserFactory().customer, order_id=server.pk, with_vm=with_vm, plan_locations=False)
    vm = VirtualMachine.objects.get(order=server)
    assert usage_vm(server) == VirtualMachine.objects.filter(order=server, deleted_at__isnull=True).first() == vm
    VirtualMachine.objects.filter(pk=vm.pk).update(deleted_at=T0)
    assert usage_vm(server) is None
