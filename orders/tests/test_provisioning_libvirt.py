"""The libvirt module and provisioning jobs against the machine's real hypervisor. Every check of
the VM is made through the libvirt API (domain state, XML, volumes), not through the module."""
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.db import connection, transaction

from accounts.tests.factories import UserFactory
from billing.tests.concurrency import run_concurrently
from orders import provisioning
from orders.models import HypervisorNode, IpAddress, Order, OrderEvent, ProvisioningJob, VirtualMachine
from orders.provisioning import jobs
from orders.services import lifecycle, placing, plan_change, renewing
from orders.services.staff import order_suspend, order_terminate, order_unsuspend

from .factories import PlanFactory
from .hypervisor import disk_backing, domain_xml, hypervisor, kvm, kvm_node, kvm_options, kvm_plan, volume_names  # noqa: F401

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=dt_timezone.utc)
Action, State = ProvisioningJob.Action, ProvisioningJob.State


def place(customer, plan, key="k1"):
    return placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options=kvm_options(plan),
                               idempotency_key=key).order


def run_queued(order) -> list[str]:
    """Play the Celery worker: run the order's due jobs in order until none is left."""
    outcomes = []
    while True:
        job = ProvisioningJob.objects.filter(order=order, state=State.QUEUED).order_by("pk").first()
        if job is None:
            return outcomes
        outcomes.append(jobs.job_run(job_id=job.pk))
        if outcomes[-1] != "done":
            return outcomes


def qemu_read_pattern(path: str, pattern: str) -> bool:
    """Whether the first 64 KiB of the image read back as `pattern` (-U: the VM may hold the image)."""
    result = subprocess.run(["qemu-io", "-r", "-U", "-f", "qcow2", "-c", f"read -P {pattern} 0 64k", path],
                            capture_output=True, text=True)
    return result.returncode == 0 and "Pattern verification failed" not in result.stdout + result.stderr


def state_of(conn, name) -> str:
    import libvirt

    dom = conn.lookupByName(name)
    return {libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_SHUTOFF: "shutoff"}.get(dom.state()[0], "other")


def active_order(customer, fund, plan):
    fund(customer, "100.00")
    order = place(customer, plan)
    assert run_queued(order) == ["done"]
    order.refresh_from_db()
    return order


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_paid_order_becomes_a_running_vm_of_the_plan_size_with_a_cloud_init_seed(kvm, kvm_plan, customer, fund):
    _libvirt, conn, pool_name = kvm
    fund(customer, "100.00")
    order = place(customer, kvm_plan)
    assert order.paid_at is not None
    assert order.status == Order.Status.PENDING and order.provisioning == Order.Provisioning.IN_PROGRESS
    job = ProvisioningJob.objects.get(order=order)
    assert (job.action, job.state, job.idempotency_key) == (Action.CREATE, State.QUEUED, f"order:{order.pk}:create")

    assert jobs.job_run(job_id=job.pk) == "done"

    order.refresh_from_db()
    assert order.status == Order.Status.ACTIVE and order.provisioning == Order.Provisioning.DONE
    assert order.ip == IpAddress.objects.get(order=order).address
    name = f"{settings.PROVISIONING_LIBVIRT_PREFIX}-order-{order.pk}"
    assert state_of(conn, name) == "running"
    assert conn.lookupByName(name).autostart() == 1
    root = domain_xml(conn, name)
    assert root.findtext("vcpu") == "1"
    assert int(root.findtext("memory")) == 64 * 1024  # KiB
    assert disk_backing(conn, name).endswith("/tmpl-a.qcow2")
    seed_path = root.find("devices/disk[@device='cdrom']/source").get("file")
    seed = open(seed_path, "rb").read()
    vm = VirtualMachine.objects.get(order=order)
    assert b"vm1.example.com" in seed and order.ip.encode() in seed and b"ssh-ed25519" in seed
    assert vm.initial_password and vm.initial_password.encode() not in seed  # only its SHA-512 crypt hash
    assert b"$6$" in seed
    assert volume_names(conn, pool_name) == {f"{name}.qcow2", f"{name}-seed.iso"}


@pytest.mark.django_db(transaction=True)
def test_two_create_jobs_for_one_order_make_one_vm(kvm, kvm_plan, currencies):
    _libvirt, conn, pool_name = kvm
    customer = UserFactory().customer
    from billing.services.payments import payment_record

    payment_record(idempotency_key="kvm-fund", customer=customer, amount=Decimal("100.00"), currency="EUR",
                   method="bank_transfer")
    order = place(customer, kvm_plan)
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        twin = jobs.job_enqueue(order=locked, action=Action.CREATE)
    job = ProvisioningJob.objects.get(order=order)
    assert twin.pk == job.pk  # the idempotency key: one create job per order

    outcomes, errors = run_concurrently(lambda: jobs.job_run(job_id=job.pk), [(), ()])
    assert not errors
    assert sorted(outcomes) == ["done", "skipped"]
    # Delivered again after it finished (a redelivered task restarted by hand): it reconciles.
    jobs._restart(job)
    assert jobs.job_run(job_id=job.pk) == "done"
    prefix = f"{settings.PROVISIONING_LIBVIRT_PREFIX}-order-"
    assert [d.name() for d in conn.listAllDomains(0) if d.name().startswith(prefix)] == [f"{prefix}{order.pk}"]
    assert len(volume_names(conn, pool_name)) == 2
    assert VirtualMachine.objects.filter(order=order).count() == 1
    assert Order.objects.get(pk=order.pk).status == Order.Status.ACTIVE


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_a_same_named_domain_of_another_database_is_never_adopted(kvm, kvm_plan, customer, fund):
    """Deterministic names make retries find their VM; a leftover domain of another VM record (a reset
    demo database) must not be taken for it."""
    _libvirt, conn, _pool = kvm
    order = active_order(customer, fund, kvm_plan)
    job = ProvisioningJob.objects.get(order=order)
    jobs._restart(job)
    assert jobs.job_run(job_id=job.pk) == "done"  # our own domain: reconciled
    VirtualMachine.objects.filter(order=order).update(created_at=T0 - timedelta(days=3))  # another record
    jobs._restart(job)
    assert jobs.job_run(job_id=job.pk) == "failed"  # not retryable: staff must look
    assert "belongs to another VM record" in ProvisioningJob.objects.get(pk=job.pk).last_error


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_power_operations_and_status_reach_the_domain(kvm, kvm_plan, customer, fund):
    _libvirt, conn, _pool = kvm
    order = active_order(customer, fund, kvm_plan)
    module = provisioning.module_for(order)
    name = VirtualMachine.objects.get(order=order).domain
    module.power_off(order)
    assert state_of(conn, name) == "shutoff" and module.status(order) == "stopped"
    module.power_off(order)  # already off: reconciles
    module.start(order)
    assert state_of(conn, name) == "running" and module.status(order) == "running"
    module.reboot(order)
    assert state_of(conn, name) == "running"
    sample = module.usage_sample(order)
    assert sample.cpu_time_ns > 0
    ticket = module.console_ticket(order)
    graphics = domain_xml(conn, name).find("devices/graphics")
    assert ticket.port == int(graphics.get("port")) and len(ticket.password) == 8


@pytest.mark.django_db
def test_unpaid_suspension_stops_the_vm_and_the_renewal_starts_it(kvm, kvm_plan, customer, fund):
    _libvirt, conn, _pool = kvm
    with time_machine.travel(T0, tick=True):
        order = active_order(customer, fund, kvm_plan)
    name = VirtualMachine.objects.get(order=order).domain
    after_grace = order.expires_at + timedelta(days=settings.ORDERS_GRACE_DAYS, hours=1)
    with time_machine.travel(after_grace, tick=True):
        summary = lifecycle.orders_lifecycle_run()
        assert summary.suspended == 1
        assert run_queued(order) == ["done"]
        assert state_of(conn, name) == "shutoff"
        assert conn.lookupByName(name).autostart() == 0
        result = renewing.order_renew(order=order, periods=1, actor=None)
        assert result.paid
        assert Order.objects.get(pk=order.pk).status == Order.Status.ACTIVE
        assert run_queued(order) == ["done"]
        assert state_of(conn, name) == "running"
    assert list(ProvisioningJob.objects.filter(order=order).order_by("pk").values_list("action", flat=True)) == [
        Action.CREATE, Action.SUSPEND, Action.UNSUSPEND]


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_staff_suspend_twice_is_one_job_and_unsuspend_starts_it_again(kvm, kvm_plan, customer, fund):
    _libvirt, conn, _pool = kvm
    order = active_order(customer, fund, kvm_plan)
    name = VirtualMachine.objects.get(order=order).domain
    staff = UserFactory(customer=None, is_staff=True)
    order_suspend(order=order, actor=staff, reason="abuse")
    with transaction.atomic():
        again = jobs.job_enqueue(order=Order.objects.select_for_update().get(pk=order.pk), action=Action.SUSPEND)
    assert ProvisioningJob.objects.filter(order=order, action=Action.SUSPEND).count() == 1 and again.requested_by == staff
    assert run_queued(order) == ["done"]
    assert state_of(conn, name) == "shutoff"
    order_unsuspend(order=order, actor=staff)
    assert run_queued(order) == ["done"]
    assert state_of(conn, name) == "running"


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_termination_undefines_the_domain_deletes_its_disks_then_frees_the_ip(kvm, kvm_plan, customer, fund):
    _libvirt, conn, pool_name = kvm
    order = active_order(customer, fund, kvm_plan)
    name = VirtualMachine.objects.get(order=order).domain
    staff = UserFactory(customer=None, is_staff=True)
    order_terminate(order=order, actor=staff, reason="requested")
    assert IpAddress.objects.filter(order=order).exists()  # still in use until the domain is gone
    assert run_queued(order) == ["done"]
    assert not [d for d in conn.listAllDomains(0) if d.name() == name]
    assert volume_names(conn, pool_name) == set()
    assert not IpAddress.objects.filter(order=order).exists()
    assert VirtualMachine.objects.get(order=order).deleted_at is not None


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_upgrade_resizes_cpu_memory_and_grows_the_disk_with_one_restart(kvm, kvm_plan, customer, fund):
    _libvirt, conn, _pool = kvm
    order = active_order(customer, fund, kvm_plan)
    bigger = PlanFactory(product_type=kvm_plan.product_type, code="kvm-big", name="KVM Big", cpu_cores=2, ram_gb=1,
                         disk_gb=2, module_settings={"memory_mib": 128}, prices={(1, "EUR"): "20.00"})
    quote = plan_change.plan_change_quote(order=order, plan=bigger)
    assert "restarts once" in provisioning.plan_change_notice(order, bigger)
    result = plan_change.order_change_plan(order=order, plan=bigger, actor=None, expected_amount=quote.proration.amount)
    assert result.paid
    job = ProvisioningJob.objects.get(order=order, action=Action.RESIZE)
    assert job.params == {"vcpus": 2, "memory_mib": 128, "disk_gib": 2, "plan": bigger.pk}
    assert run_queued(order) == ["done"]
    name = VirtualMachine.objects.get(order=order).domain
    root = domain_xml(conn, name)
    assert root.findtext("vcpu") == "2" and int(root.findtext("memory")) == 128 * 1024
    assert state_of(conn, name) == "running"
    disk = conn.storageVolLookupByPath(root.find("devices/disk[@device='disk']/source").get("file"))
    assert disk.info()[1] == 2 * 1024 ** 3
    vm = VirtualMachine.objects.get(order=order)
    assert (vm.vcpus, vm.memory_mib, vm.disk_gib) == (2, 128, 2)


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_reinstall_replaces_the_disk_with_an_overlay_on_the_new_template(kvm, kvm_plan, customer, fund):
    _libvirt, conn, _pool = kvm
    order = active_order(customer, fund, kvm_plan)
    name = VirtualMachine.objects.get(order=order).domain
    disk_path = domain_xml(conn, name).find("devices/disk[@device='disk']/source").get("file")
    provisioning.module_for(order).power_off(order)
    # The customer's data: 64 KiB of 0xab at the start of the disk (written with QEMU's own tool).
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 64k", disk_path], check=True, capture_output=True)
    assert qemu_read_pattern(disk_path, "0xab")
    first_password = jobs.vm_password_take(order=order, actor=None)  # the customer read it
    assert first_password and VirtualMachine.objects.get(order=order).initial_password == ""
    with transaction.atomic():
        jobs.job_enqueue(order=Order.objects.select_for_update().get(pk=order.pk), action=Action.REINSTALL,
                         params={"os_image": "Debian 12", "ssh_keys": []})
    assert run_queued(order) == ["done"]
    assert disk_backing(conn, name).endswith("/tmpl-b.qcow2")
    assert not qemu_read_pattern(disk_path, "0xab") and qemu_read_pattern(disk_path, "0")
    assert state_of(conn, name) == "running"
    vm = VirtualMachine.objects.get(order=order)
    assert vm.template.volume == "tmpl-b.qcow2"
    # The reinstalled system has a new root password, waiting to be shown once, and only hashed in its seed.
    assert vm.initial_password and vm.initial_password != first_password
    seed = open(domain_xml(conn, name).find("devices/disk[@device='cdrom']/source").get("file"), "rb").read()
    assert vm.initial_password.encode() not in seed and b"$6$" in seed


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_a_node_refusing_connections_gives_a_clear_error_and_retries_with_the_order_still_paid(kvm, kvm_node, kvm_plan,
                                                                                              customer, fund):
    _libvirt, conn, _pool = kvm
    HypervisorNode.objects.filter(pk=kvm_node.pk).update(uri="qemu+tcp://127.0.0.1:1/system")
    fund(customer, "100.00")
    order = place(customer, kvm_plan)
    job = ProvisioningJob.objects.get(order=order)
    assert jobs.job_run(job_id=job.pk) == "retry"
    job.refresh_from_db()
    order.refresh_from_db()
    assert job.state == State.QUEUED and job.attempts == 1
    assert "Cannot connect to node kvm-test (qemu+tcp://127.0.0.1:1/system)" in job.last_error
    assert job.next_attempt_at == job.claimed_at or job.next_attempt_at > T0  # backing off
    assert order.paid_at and order.status == Order.Status.PENDING
    assert order.provisioning == Order.Provisioning.IN_PROGRESS and "Cannot connect" in order.provisioning_note
    assert jobs.job_run(job_id=job.pk) == "skipped"  # not due yet

    # Every attempt fails: the job fails for good and the order says so; staff fix the node and retry.
    for attempt in range(2, settings.PROVISIONING_JOB_MAX_ATTEMPTS + 1):
        ProvisioningJob.objects.filter(pk=job.pk).update(next_attempt_at=T0 - timedelta(days=1))
        assert jobs.job_run(job_id=job.pk) == ("failed" if attempt == settings.PROVISIONING_JOB_MAX_ATTEMPTS else "retry")
    order.refresh_from_db()
    assert order.provisioning == Order.Provisioning.FAILED and order.paid_at
    assert OrderEvent.objects.filter(order=order, action="provisioning_failed").exists()
    HypervisorNode.objects.filter(pk=kvm_node.pk).update(uri="qemu:///system")
    staff = UserFactory(customer=None, is_staff=True)
    assert jobs.jobs_retry(job_ids=[job.pk], actor=staff) == 1
    assert Order.objects.get(pk=order.pk).provisioning == Order.Provisioning.IN_PROGRESS
    assert jobs.job_run(job_id=job.pk) == "done"
    order.refresh_from_db()
    assert order.status == Order.Status.ACTIVE
    from billing.models import Invoice

    assert Invoice.objects.filter(customer=customer).count() == 1  # charged once


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_create_is_completed_by_the_sweeper(kvm, kvm_plan, currencies):
    """A real worker process runs the create job and is SIGKILLed once the domain shows up on the
    hypervisor; the sweeper requeues the job and the rerun finds the VM instead of making another."""
    import libvirt as libvirt_api

    _libvirt, conn, pool_name = kvm
    customer = UserFactory().customer
    from billing.services.payments import payment_record

    payment_record(idempotency_key="kvm-kill", customer=customer, amount=Decimal("100.00"), currency="EUR",
                   method="bank_transfer")
    order = place(customer, kvm_plan)
    job = ProvisioningJob.objects.get(order=order)
    name = f"{settings.PROVISIONING_LIBVIRT_PREFIX}-order-{order.pk}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test",
           "DATABASE_URL": os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]}
    worker = subprocess.Popen(
        [sys.executable, "-c", "import django; django.setup(); from orders.provisioning import jobs; "
                               f"jobs.job_run(job_id={job.pk})"],
        env=env, cwd=settings.BASE_DIR)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn.lookupByName(name)
            break
        except libvirt_api.libvirtError:
            time.sleep(0.05)
    else:
        worker.kill()
        pytest.fail("the worker never defined the domain")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    job.refresh_from_db()
    assert job.state == State.RUNNING  # the dead worker's claim
    assert Order.objects.get(pk=order.pk).status == Order.Status.PENDING

    assert jobs.jobs_sweep() == []  # a live worker might still be on it
    later = job.claimed_at + timedelta(seconds=settings.PROVISIONING_JOB_STUCK_SECONDS + 1)
    with time_machine.travel(later, tick=True):
        assert jobs.jobs_sweep() == [job.pk]
        assert jobs.job_run(job_id=job.pk) == "done"
    assert Order.objects.get(pk=order.pk).status == Order.Status.ACTIVE
    prefix = f"{settings.PROVISIONING_LIBVIRT_PREFIX}-order-"
    assert [d.name() for d in conn.listAllDomains(0) if d.name().startswith(prefix)] == [name]
    assert state_of(conn, name) == "running"
    assert volume_names(conn, pool_name) == {f"{name}.qcow2", f"{name}-seed.iso"}
