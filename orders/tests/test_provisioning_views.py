"""The customer's side of provisioning: "being set up" with htmx polling, and the root password shown once."""
from datetime import datetime, timezone as dt_timezone

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory
from orders.models import HypervisorNode, IpAddress, Order, ProductType, ProvisioningJob, VirtualMachine
from orders.services import placing

from .factories import PlanFactory, order_options

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def setting_up(customer, fund):
    product_type, _ = ProductType.objects.get_or_create(code="kvm", defaults={
        "name": "KVM", "provisioner": ProductType.Provisioner.LIBVIRT, "order_fields": ["hostname"]})
    plan = PlanFactory(product_type=product_type)
    fund(customer, "50.00")
    return placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, options=order_options(plan),
                               idempotency_key="v").order


def finish_create(order, password="s3cret-Pass-123"):
    """What the create job records once the VM runs (here without a hypervisor)."""
    node = HypervisorNode.objects.create(name="n1", uri="qemu:///system", cpu_capacity=4, ram_capacity_mib=8192,
                                         disk_capacity_gib=100, network="default")
    VirtualMachine.objects.create(order=order, node=node, domain=f"d-{order.pk}", vcpus=2, memory_mib=4096, disk_gib=80,
                                  initial_password=password)
    ProvisioningJob.objects.filter(order=order).update(state=ProvisioningJob.State.DONE)
    with transaction.atomic():
        placing.order_provisioned(order=Order.objects.select_for_update().get(pk=order.pk),
                                  ip=IpAddress.objects.get(order=order).address)


@time_machine.travel(T0, tick=False)
def test_the_order_page_polls_while_the_server_is_set_up_then_reloads(client, owner, setting_up):
    client.force_login(owner)
    page = client.get(reverse("orders:order_detail", args=[setting_up.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="setup-progress"' in html and 'hx-trigger="every 3s"' in html
    assert "Your server is being set up" in html and "Queued" in html
    assert "Paid, being set up" in html  # the status badge of a paid order without its server yet

    url = reverse("orders:order_setup_progress", args=[setting_up.pk])
    poll = client.get(url, headers={"HX-Request": "true"})
    assert poll.status_code == 200 and "HX-Refresh" not in poll and "being set up" in poll.content.decode()
    ProvisioningJob.objects.filter(order=setting_up).update(attempts=2, last_error="ModuleError: node n1 down")
    delayed = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "taking longer than usual" in delayed and "node n1 down" not in delayed  # errors are for staff

    finish_create(setting_up)
    done = client.get(url, headers={"HX-Request": "true"})
    assert done["HX-Refresh"] == "true"
    assert client.get(url).status_code == 302  # not htmx: the page itself


@time_machine.travel(T0, tick=False)
def test_a_failed_setup_tells_the_customer_the_payment_is_safe(client, owner, setting_up):
    with transaction.atomic():
        placing.order_provisioning_failed(order=Order.objects.select_for_update().get(pk=setting_up.pk),
                                          error="ModuleError: disk full", final=True)
    client.force_login(owner)
    html = client.get(reverse("orders:order_detail", args=[setting_up.pk])).content.decode()
    assert 'data-testid="setup-failed"' in html and "Your payment is safe" in html and "disk full" not in html
    assert 'hx-trigger="every 3s"' not in html  # nothing left to poll for: staff take over


@time_machine.travel(T0, tick=False)
def test_the_root_password_is_shown_once_by_post_to_the_owner_only(client, owner, customer, setting_up):
    finish_create(setting_up)
    url = reverse("orders:order_root_password", args=[setting_up.pk])
    stranger = UserFactory()
    client.force_login(stranger)
    assert client.post(url).status_code == 404
    finance = UserFactory(customer=customer, role=User.Role.FINANCE)
    client.force_login(finance)
    assert client.post(url).status_code == 403
    client.force_login(owner)
    assert client.get(url).status_code == 405  # no GET changes state
    page = client.get(reverse("orders:order_detail", args=[setting_up.pk])).content.decode()
    assert 'data-testid="root-password-waiting"' in page and "s3cret-Pass-123" not in page
    shown = client.post(url)
    assert shown.status_code == 200 and "s3cret-Pass-123" in shown.content.decode()
    assert shown["Cache-Control"] == "no-store"
    assert VirtualMachine.objects.get(order=setting_up).initial_password == ""
    again = client.post(url)
    assert again.status_code == 302
    assert 'data-testid="root-password-waiting"' not in client.get(
        reverse("orders:order_detail", args=[setting_up.pk])).content.decode()


@time_machine.travel(T0, tick=False)
def test_the_customer_is_told_before_confirming_that_a_plan_change_restarts_the_server(client, owner, setting_up):
    finish_create(setting_up)
    plan = setting_up.plan
    bigger = PlanFactory(product_type=plan.product_type, cpu_cores=4, ram_gb=8, disk_gb=160, prices={(1, "EUR"): "30.00"})
    smaller_disk = PlanFactory(product_type=plan.product_type, cpu_cores=2, ram_gb=4, disk_gb=40,
                               prices={(1, "EUR"): "8.00"})
    client.force_login(owner)
    url = reverse("orders:order_change_plan", args=[setting_up.pk])
    upgrade = client.get(url, {"plan": bigger.pk}).content.decode()
    assert 'data-testid="server-notice"' in upgrade and "restarts once to apply the new CPU and memory" in upgrade
    downgrade = client.get(url, {"plan": smaller_disk.pk}).content.decode()
    assert "Disks cannot shrink: your server keeps its 80 GiB disk." in downgrade and "restarts once" not in downgrade


def test_the_order_page_reads_in_one_query_what_order_get_and_the_setup_queries_read(customer, setting_up):
    """selectors.order_page (compiled once) against order_get(with_vm=True), the plan's locations, the
    add-ons EXISTS and order_setup's own queries: while set up, with two create jobs, with a live VM, a
    deleted VM; another customer's order is a 404; the events and invoices against their querysets."""
    from django.http import Http404

    from orders import addons, selectors
    from orders.models import Location, OrderEvent

    from .factories import LocationFactory, make_addon

    order = setting_up
    order.plan.locations.add(LocationFactory(code="fra", name="Frankfurt"), LocationFactory(code="zrh", name="Zurich"))
    Location.objects.filter(code="zrh").update(name="Berlin")  # sorted by name, not by id

    def check(expected_setup):
        page = selectors.order_page(customer=customer, order_id=order.pk)
        full = selectors.order_get(customer=customer, order_id=order.pk, with_vm=True)
        assert page.customer is customer
        for field in Order._meta.concrete_fields:
            assert getattr(page, field.attname) == getattr(full, field.attname), field.name
        for name in selectors.PAGE_PLAN_FIELDS:
            assert getattr(page.plan, name) == getattr(full.plan, name)
        assert page.location_names == [location.name for location in full.plan.locations.all()] == ["Amsterdam", "Berlin", "Frankfurt"]
        assert page.plan_offers_addons == addons.plan_offers_addons(full.plan)
        assert (selectors.order_setup(order=page) == selectors.order_setup(order=Order.objects.get(pk=order.pk))
                == selectors.order_setup(order=page) | expected_setup)
        assert [(e.pk, e.actor_id) for e in selectors.page_events(order=page)] == [
            (e.pk, e.actor_id) for e in selectors.order_events(order=full)[:50]]
        assert [i.pk for i in selectors.page_invoices(order=page)] == [i.pk for i in selectors.order_invoices(order=full)[:20]]
        return page

    page = check({"setting_up": True, "step": 1, "delayed": False, "password_waiting": False, "vm_state": ""})
    assert page.plan_offers_addons is False and [i.pk for i in selectors.page_invoices(order=page)] == [order.invoice_id]
    assert OrderEvent.objects.filter(order=order).exists() and selectors.page_events(order=page)
    make_addon(order.plan, "backups", "Backups")
    ProvisioningJob.objects.filter(order=order).update(attempts=3)
    latest = ProvisioningJob.objects.filter(order=order).first()
    latest.pk, latest.state, latest.attempts, latest.idempotency_key = None, ProvisioningJob.State.RUNNING, 2, "second"
    latest.save()
    assert check({"step": 2, "delayed": True}).plan_offers_addons is True
    finish_create(order)
    page = check({"setting_up": False, "step": 3, "password_waiting": True})
    assert page.vm.initial_password == "s3cret-Pass-123"
    VirtualMachine.objects.filter(order=order).update(deleted_at=T0)
    check({"password_waiting": False, "vm_state": ""})
    stranger = UserFactory().customer
    with pytest.raises(Http404):
        selectors.order_page(customer=stranger, order_id=order.pk)
