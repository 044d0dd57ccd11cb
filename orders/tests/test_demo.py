import io

import pytest

from orders.models import Order, Plan

from .hypervisor import hypervisor  # noqa: F401


@pytest.mark.django_db
def test_demo_seed_builds_a_catalogue_and_two_active_orders(owner):
    from billing import demo as billing_demo
    from orders import demo

    out = io.StringIO()
    billing_demo.seed(customer=owner.customer, owner=owner, stdout=out)
    demo.seed(customer=owner.customer, owner=owner, stdout=out)
    assert Plan.objects.filter(product_type__code="dedicated").count() == 2
    orders = Order.objects.filter(customer=owner.customer)
    assert orders.count() == 2 and all(o.status == Order.Status.ACTIVE and o.ip for o in orders)


def _seed(owner, monkeypatch, mode):
    from billing import demo as billing_demo
    from orders import demo

    monkeypatch.setenv("DEMO_PROVISIONING", mode)
    out = io.StringIO()
    billing_demo.seed(customer=owner.customer, owner=owner, stdout=out)
    demo.seed(customer=owner.customer, owner=owner, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_make_run_demo_uses_a_local_libvirt_node_when_libvirt_runs(owner, monkeypatch, hypervisor):
    from orders.models import HypervisorNode, ProvisioningJob

    output = _seed(owner, monkeypatch, "auto")
    assert "provisioning: libvirt module, demo node demo-local on qemu:///system" in output
    node = HypervisorNode.objects.get(name="demo-local")
    assert node.templates.count() == 4
    assert set(Plan.objects.filter(product_type__code="vps").values_list("module", flat=True)) == {"libvirt"}
    orders = Order.objects.filter(customer=owner.customer)
    assert all(o.provisioning == Order.Provisioning.IN_PROGRESS for o in orders)  # the worker creates the VMs
    assert ProvisioningJob.objects.filter(order__in=orders, action="create").count() == 2


@pytest.mark.django_db
def test_make_run_demo_falls_back_to_the_ip_pool_module_saying_why(owner, monkeypatch):
    from orders import demo

    monkeypatch.setattr(demo, "DEMO_URI", "qemu+tcp://127.0.0.1:1/system")
    output = _seed(owner, monkeypatch, "auto")
    assert "provisioning: IP-pool module (libvirt cannot run here:" in output
    orders = Order.objects.filter(customer=owner.customer)
    assert orders.count() == 2 and all(o.status == Order.Status.ACTIVE and o.ip for o in orders)
