"""Resource add-ons on the machine's real hypervisor: a VM is created with the plan's size plus its
extra vCPU and disk, and a vCPU added on the running service reaches the VM by a resize job queued
after commit. Checked through the libvirt API, not through the module."""
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
import time_machine

from orders.models import ProvisioningJob, VirtualMachine
from orders.services import addons as addon_services
from orders.services import placing

from .factories import make_addon
from .hypervisor import domain_xml, hypervisor, kvm, kvm_node, kvm_options, kvm_plan  # noqa: F401
from .test_provisioning_libvirt import run_queued, state_of

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=dt_timezone.utc)
GIB = 1024 ** 3


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_extra_vcpu_and_disk_size_the_vm_and_a_later_vcpu_resizes_it_after_commit(kvm, kvm_plan, customer, fund,
                                                                                  django_capture_on_commit_callbacks):
    _libvirt, conn, _pool = kvm
    cpu = make_addon(kvm_plan, "cpu", "Extra vCPU", max_quantity=3, prices={(1, "EUR"): "5.00"})
    disk = make_addon(kvm_plan, "disk", "Extra disk", step=2, max_quantity=5, prices={(1, "EUR"): "1.00"})
    fund(customer, "100.00")
    placed = placing.order_place(customer=customer, actor=None, plan=kvm_plan, period_months=1,
                                  options=kvm_options(kvm_plan), idempotency_key="kvm-addons",
                                  addons={cpu.pk: 1, disk.pk: 1})
    order = placed.order
    assert run_queued(order) == ["done"]
    name = VirtualMachine.objects.get(order=order).domain
    root = domain_xml(conn, name)
    # The plan: 1 vCPU, 1 GiB disk; the add-ons: +1 vCPU, +2 GiB (one step of 2).
    assert root.findtext("vcpu") == "2"
    disk_volume = conn.storageVolLookupByPath(root.find("devices/disk[@device='disk']/source").get("file"))
    assert disk_volume.info()[1] == 3 * GIB

    with time_machine.travel(T0 + timedelta(days=10), tick=True):
        with django_capture_on_commit_callbacks() as callbacks:
            result = addon_services.order_addon_change(order=order, addon=cpu, quantity=2, actor=None)
        assert result.paid
        job = ProvisioningJob.objects.get(order=order, action=ProvisioningJob.Action.RESIZE)
        assert job.params["vcpus"] == 3 and job.params["disk_gib"] == 3
        assert callbacks  # the job's task is queued only once the change has committed
        assert run_queued(order) == ["done"]
    root = domain_xml(conn, name)
    assert root.findtext("vcpu") == "3" and state_of(conn, name) == "running"
    vm = VirtualMachine.objects.get(order=order)
    assert (vm.vcpus, vm.disk_gib) == (3, 3)
