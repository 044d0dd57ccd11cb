"""Staff side of provisioning: nodes with capacity used/free and a health check against the real
hypervisor, the jobs list with retry, and the order page naming the VM's node and domain."""
from datetime import datetime, timezone as dt_timezone

import pytest
import time_machine
from django.urls import reverse

from accounts.tests.factories import UserFactory
from orders.models import HypervisorNode, Order, ProvisioningJob, VirtualMachine
from orders.provisioning import jobs
from portal.tests.test_backoffice import run_action, staff

from .hypervisor import hypervisor, kvm, kvm_node, kvm_options, kvm_plan  # noqa: F401
from .test_provisioning_libvirt import place, run_queued

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=dt_timezone.utc)


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_nodes_show_capacity_and_the_health_check_reaches_the_hypervisor(client, kvm, kvm_node, kvm_plan, customer, fund):
    fund(customer, "100.00")
    order = place(customer, kvm_plan)
    assert run_queued(order) == ["done"]
    refusing = HypervisorNode.objects.create(name="down", uri="qemu+tcp://127.0.0.1:1/system", cpu_capacity=4,
                                             ram_capacity_mib=2048, disk_capacity_gib=50, network="default")
    admin_user = UserFactory(customer=None, is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    listing = client.get(reverse("admin:orders_hypervisornode_changelist")).content.decode()
    assert "64 of 4096 MiB used, 4032 free" in listing and "1 of 8 used, 7 free" in listing

    response = run_action(client, admin_user, "orders_hypervisornode", "check_health", [kvm_node.pk, refusing.pk])
    assert response.status_code == 200
    kvm_node.refresh_from_db()
    refusing.refresh_from_db()
    assert kvm_node.check_ok is True and f"pool {kvm_node.storage_pool}:" in kvm_node.check_message
    assert refusing.check_ok is False and "Cannot connect to node down" in refusing.check_message

    page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    vm = VirtualMachine.objects.get(order=order)
    assert vm.domain in page and kvm_node.name in page
    assert vm.initial_password not in page  # the customer's secret


@pytest.mark.django_db
@time_machine.travel(T0, tick=False)
def test_staff_retry_a_failed_job_from_the_jobs_list_with_the_permission(client, customer, fund):
    from orders.models import ProductType

    from .factories import PlanFactory, order_options
    from orders.services import placing

    product_type, _ = ProductType.objects.get_or_create(code="kvm", defaults={
        "name": "KVM", "provisioner": ProductType.Provisioner.LIBVIRT, "order_fields": ["hostname"]})
    plan = PlanFactory(product_type=product_type)
    fund(customer, "50.00")
    order = placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options=order_options(plan),
                                idempotency_key="a").order
    job = ProvisioningJob.objects.get(order=order)
    ProvisioningJob.objects.filter(pk=job.pk).update(state=ProvisioningJob.State.FAILED, attempts=6,
                                                     last_error="ModuleError: no node")
    Order.objects.filter(pk=order.pk).update(provisioning=Order.Provisioning.FAILED)
    viewer = staff("orders.view_provisioningjob", "orders.change_provisioningjob")
    client.force_login(viewer)
    listing = client.get(reverse("admin:orders_provisioningjob_changelist") + "?state__exact=failed")
    assert listing.status_code == 200 and "ModuleError: no node" in listing.content.decode()
    run_action(client, viewer, "orders_provisioningjob", "retry", [job.pk])
    assert ProvisioningJob.objects.get(pk=job.pk).state == ProvisioningJob.State.FAILED  # no manage_services

    manager = staff("orders.view_provisioningjob", "orders.change_provisioningjob", "portal.manage_services")
    run_action(client, manager, "orders_provisioningjob", "retry", [job.pk])
    job.refresh_from_db()
    assert (job.state, job.attempts) == (ProvisioningJob.State.QUEUED, 0)
    assert Order.objects.get(pk=order.pk).provisioning == Order.Provisioning.IN_PROGRESS
    assert jobs.jobs_sweep() == []  # due now, but a fresh (attempts 0) job gets the on_commit task's grace
