"""Provisioning jobs and libvirt placement rules that need no hypervisor: node choice, job order,
termination superseding a pending create, module settings."""
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import transaction

from orders.models import (HypervisorNode, IpAddress, Location, Order, OsTemplate, ProductType, ProvisioningJob,
                           VirtualMachine)
from orders.provisioning import jobs
from orders.provisioning.base import ModuleError
from orders.provisioning.libvirt_kvm import LibvirtModule
from orders.services import placing
from orders.services.staff import order_terminate

from .factories import PlanFactory, order_options

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=dt_timezone.utc)
Action, State = ProvisioningJob.Action, ProvisioningJob.State


@pytest.fixture
def plan(db):
    product_type, _ = ProductType.objects.get_or_create(code="kvm", defaults={
        "name": "KVM", "provisioner": ProductType.Provisioner.LIBVIRT, "order_fields": ["hostname", "os_image", "location"]})
    return PlanFactory(product_type=product_type, cpu_cores=2, ram_gb=1, disk_gb=10)


def node(name, *, ram=4096, location=None, template_for=None):
    created = HypervisorNode.objects.create(name=name, uri="qemu+ssh://root@%s.invalid/system" % name, cpu_capacity=16,
                                            ram_capacity_mib=ram, disk_capacity_gib=500, network="default",
                                            location=location)
    if template_for is not None:
        OsTemplate.objects.create(node=created, os_image=template_for, volume="debian.qcow2")
    return created


def paid_order(customer, fund, plan, key="k"):
    fund(customer, "50.00")
    return placing.order_place(customer=customer, actor=None, plan=plan, period_months=1,
                               options=order_options(plan), idempotency_key=key).order


@time_machine.travel(T0, tick=False)
def test_the_least_loaded_node_that_fits_and_has_the_os_template_is_chosen(plan, customer, fund):
    image = plan.product_type.os_images.get()
    amsterdam = Location.objects.get(code="ams")
    elsewhere = Location.objects.create(code="nyc", name="New York")
    busy = node("busy", template_for=image)
    quiet = node("quiet", template_for=image, ram=8192)
    full = node("full", ram=1024, template_for=image)
    node("no-template")
    node("other-city", location=elsewhere, template_for=image, ram=65536)
    node("ams-empty-but-inactive", location=amsterdam, template_for=image, ram=65536)
    HypervisorNode.objects.filter(name="ams-empty-but-inactive").update(is_active=False)
    earlier = paid_order(customer, fund, plan, key="earlier")
    VirtualMachine.objects.create(order=earlier, node=busy, domain="x", vcpus=2, memory_mib=2048, disk_gib=10)
    VirtualMachine.objects.create(order=paid_order(customer, fund, plan, key="fill"), node=full, domain="y", vcpus=1,
                                  memory_mib=512, disk_gib=10)
    order = paid_order(customer, fund, plan)

    vm = LibvirtModule()._machine(order)

    # busy: (2048+1024)/4096 = 75 %; quiet: 1024/8192 = 12.5 %; full: 512+1024 > 1024.
    assert vm.node == quiet and vm.domain.endswith(f"-order-{order.pk}")
    assert (vm.vcpus, vm.memory_mib, vm.disk_gib) == (2, 1024, 10) and len(vm.initial_password) >= 16
    assert LibvirtModule()._machine(order).pk == vm.pk  # a retry keeps its node and password


@time_machine.travel(T0, tick=False)
def test_no_node_with_room_is_a_clear_retryable_error(plan, customer, fund):
    node("tiny", ram=512, template_for=plan.product_type.os_images.get())
    order = paid_order(customer, fund, plan)
    with pytest.raises(ModuleError, match="No active node has room for 2 vCPU / 1024 MiB / 10 GiB"):
        LibvirtModule()._machine(order)
    job = ProvisioningJob.objects.get(order=order)
    assert jobs.job_run(job_id=job.pk) == "retry"
    assert "No active node has room" in ProvisioningJob.objects.get(pk=job.pk).last_error
    assert not VirtualMachine.objects.filter(order=order).exists()


@time_machine.travel(T0, tick=False)
def test_a_job_waits_for_the_earlier_jobs_of_its_order(plan, customer, fund):
    order = paid_order(customer, fund, plan)
    create = ProvisioningJob.objects.get(order=order)
    ProvisioningJob.objects.filter(pk=create.pk).update(next_attempt_at=T0 + timedelta(minutes=5), attempts=1)
    with transaction.atomic():
        suspend = jobs.job_enqueue(order=Order.objects.select_for_update().get(pk=order.pk), action=Action.SUSPEND)
    assert jobs.job_run(job_id=suspend.pk) == "skipped"
    assert ProvisioningJob.objects.get(pk=suspend.pk).state == State.QUEUED
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        assert jobs.jobs_sweep() == [create.pk]  # the suspend's turn comes after the create


@time_machine.travel(T0, tick=False)
def test_termination_cancels_jobs_still_backing_off_and_frees_the_ip(plan, customer, fund):
    order = paid_order(customer, fund, plan)
    create = ProvisioningJob.objects.get(order=order)
    # The create job's outcome as the worker records it (here without a hypervisor, so without a VM row).
    ProvisioningJob.objects.filter(pk=create.pk).update(state=State.DONE)
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        placing.order_provisioned(order=locked, ip=IpAddress.objects.get(order=order).address)
        resize = jobs.job_enqueue(order=locked, action=Action.RESIZE,
                                  params={"vcpus": 4, "memory_mib": 2048, "disk_gib": 20, "plan": plan.pk})
    ProvisioningJob.objects.filter(pk=resize.pk).update(next_attempt_at=T0 + timedelta(minutes=5), attempts=2,
                                                        last_error="ModuleError: node down")
    from accounts.tests.factories import UserFactory

    order_terminate(order=order, actor=UserFactory(customer=None, is_staff=True), reason="customer left")
    assert ProvisioningJob.objects.get(pk=resize.pk).state == State.CANCELLED
    assert IpAddress.objects.filter(order=order).exists()  # until the terminate job has run
    terminate = ProvisioningJob.objects.get(order=order, action=Action.TERMINATE)
    assert jobs.job_run(job_id=terminate.pk) == "done"  # no VM row: nothing on a node to delete
    assert not IpAddress.objects.filter(order=order).exists()
    assert Order.objects.get(pk=order.pk).status == Order.Status.TERMINATED


@pytest.mark.django_db(transaction=True)
def test_two_parallel_placements_never_overfill_a_node():
    """Room for one VM, two creates at once: the node rows are locked while choosing, so the second
    sees the first's reservation and gets the clear "no room" error instead of overcommitting."""
    from decimal import Decimal

    from accounts.tests.factories import UserFactory
    from billing.services.payments import payment_record
    from billing.tests.concurrency import run_concurrently
    from billing.tests.factories import make_currencies

    make_currencies()
    product_type, _ = ProductType.objects.get_or_create(code="kvm", defaults={
        "name": "KVM", "provisioner": ProductType.Provisioner.LIBVIRT, "order_fields": ["hostname", "os_image"]})
    plan = PlanFactory(product_type=product_type, cpu_cores=2, ram_gb=1, disk_gb=10)
    node("one-slot", ram=1024, template_for=product_type.os_images.get())
    orders = []
    for n in range(2):
        customer = UserFactory().customer
        payment_record(idempotency_key=f"slot:{n}", customer=customer, amount=Decimal("50.00"), currency="EUR",
                       method="bank_transfer")
        orders.append(placing.order_place(customer=customer, actor=None, plan=plan, period_months=1,
                                          options=order_options(plan), idempotency_key=f"slot:{n}").order)
    placed, errors = run_concurrently(lambda order: LibvirtModule()._machine(order).node.name, [(order,) for order in orders])
    assert placed == ["one-slot"]
    assert [type(error) for error in errors] == [ModuleError] and str(errors[0]).startswith("No active node has room")
    assert VirtualMachine.objects.count() == 1


@time_machine.travel(T0, tick=False)
def test_a_job_retried_by_staff_after_termination_never_reaches_the_hypervisor(plan, customer, fund):
    """Staff retrying a job cancelled by termination (a create, a resize) must not touch a VM nobody pays for."""
    from accounts.tests.factories import UserFactory

    order = paid_order(customer, fund, plan)
    create = ProvisioningJob.objects.get(order=order)
    ProvisioningJob.objects.filter(pk=create.pk).update(state=State.DONE)
    with transaction.atomic():
        placing.order_provisioned(order=Order.objects.select_for_update().get(pk=order.pk),
                                  ip=IpAddress.objects.get(order=order).address)
        resize = jobs.job_enqueue(order=Order.objects.get(pk=order.pk), action=Action.RESIZE,
                                  params={"vcpus": 4, "memory_mib": 2048, "disk_gib": 20, "plan": plan.pk})
    staff = UserFactory(customer=None, is_staff=True)
    order_terminate(order=order, actor=staff, reason="left")
    assert ProvisioningJob.objects.get(pk=resize.pk).state == State.CANCELLED
    terminate = ProvisioningJob.objects.get(order=order, action=Action.TERMINATE)
    assert jobs.job_run(job_id=terminate.pk) == "done"
    assert jobs.jobs_retry(job_ids=[resize.pk], actor=staff) == 1
    assert jobs.job_run(job_id=resize.pk) == "cancelled"  # the module is never called for an ended service
    assert ProvisioningJob.objects.get(pk=resize.pk).last_error == "The service has ended; only its termination runs."


def test_retry_back_off_doubles_up_to_the_cap(settings):
    settings.PROVISIONING_RETRY_BASE_SECONDS, settings.PROVISIONING_RETRY_MAX_SECONDS = 30, 200
    assert [jobs.retry_delay_seconds(n) for n in range(1, 6)] == [30, 60, 120, 200, 200]


def test_plan_module_and_settings_are_validated(plan):
    plan.module_settings = {"memory_mib": 16}
    with pytest.raises(ValidationError, match="memory_mib must be a whole number of at least 32"):
        plan.full_clean()
    plan.module_settings = {"ram": 512}
    with pytest.raises(ValidationError, match="Unknown setting ram"):
        plan.full_clean()
    plan.module_settings, plan.module = {}, "openstack"
    with pytest.raises(ValidationError, match="Unknown provisioning module: openstack"):
        plan.full_clean()
    plan.module = "manual"
    plan.module_settings = {"memory_mib": 512}
    with pytest.raises(ValidationError, match="takes no settings"):
        plan.full_clean()
    plan.module_settings = {}
    plan.full_clean()
    assert plan.module_code == "manual"


@time_machine.travel(T0, tick=False)
def test_the_order_admin_retry_restarts_a_failed_create_with_fresh_attempts(plan, customer, fund):
    from accounts.tests.factories import UserFactory

    order = paid_order(customer, fund, plan)
    job = ProvisioningJob.objects.get(order=order)
    ProvisioningJob.objects.filter(pk=job.pk).update(state=State.FAILED, attempts=6, last_error="ModuleError: x")
    with transaction.atomic():
        placing.order_provisioning_failed(order=Order.objects.select_for_update().get(pk=order.pk),
                                          error="ModuleError: x", final=True)
    assert placing.order_provision_retry(order=order, actor=UserFactory(customer=None, is_staff=True)) is False
    job.refresh_from_db()
    order.refresh_from_db()
    assert (job.state, job.attempts) == (State.QUEUED, 0)
    assert (order.provisioning, order.provisioning_note) == (Order.Provisioning.IN_PROGRESS, "")
    assert ProvisioningJob.objects.filter(order=order).count() == 1  # the same create job, not a second one
