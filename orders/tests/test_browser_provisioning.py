"""End to end in Chromium against the real hypervisor: order a VPS, pay from the balance, watch it
being set up (htmx polling) while the worker creates the VM, see it running, read the root password once."""
from decimal import Decimal

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.services import payment_record
from billing.tests.factories import make_currencies
from orders.models import Order, VirtualMachine

from .hypervisor import hypervisor, kvm, kvm_node, kvm_plan  # noqa: F401
from .test_provisioning_libvirt import run_queued, state_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_order_a_vps_pay_and_see_it_running(page, login, screenshot, kvm, kvm_plan):
    _libvirt, conn, _pool = kvm
    make_currencies()
    owner = UserFactory(first_name="Alex", last_name="Demo")
    payment_record(idempotency_key="browser-kvm", customer=owner.customer, amount=Decimal("100.00"), currency="EUR",
                   method="bank_transfer")
    login(owner.username, DEFAULT_PASSWORD)

    page.goto(f"/orders/new/{kvm_plan.pk}/")
    page.fill("input[name=hostname]", "vm1.example.com")
    page.get_by_test_id("order-review").click()
    page.get_by_test_id("order-confirm").click()

    page.get_by_test_id("setup-progress").wait_for()
    assert "Your server is being set up" in page.get_by_test_id("setup-progress").inner_text()
    assert "your server is being created" in page.content()
    screenshot("provisioning-being-set-up")
    order = Order.objects.get()
    assert order.paid_at and order.status == Order.Status.PENDING

    assert run_queued(order) == ["done"]  # the Celery worker's part, in this thread

    page.get_by_test_id("root-password-waiting").wait_for(timeout=15_000)  # the poll reloaded the page
    assert page.get_by_test_id("order-status").inner_text() == "Active"
    order.refresh_from_db()
    assert page.get_by_test_id("detail-ip").inner_text() == order.ip
    assert state_of(conn, VirtualMachine.objects.get(order=order).domain) == "running"
    screenshot("provisioning-running")
    page.get_by_test_id("show-root-password").click()
    password = page.get_by_test_id("root-password").input_value()
    assert len(password) >= 16
    screenshot("provisioning-root-password")
    page.goto(f"/orders/{order.pk}/")
    assert page.get_by_test_id("root-password-waiting").count() == 0
