"""End to end in Chromium against the real hypervisor and a real Celery worker: order a VPS, pay from
the balance, watch it being set up (htmx polling) while the worker creates the VM, see it running,
read the root password once."""
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.services.payments import payment_record
from billing.tests.factories import make_currencies
from orders.models import Order, VirtualMachine

from .hypervisor import hypervisor, kvm, kvm_node, kvm_plan  # noqa: F401
from .test_provisioning_libvirt import state_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def celery_worker():
    """A Celery worker process on the test broker (TEST_REDIS_DB) and the test database."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test",
           "DATABASE_URL": os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool=solo",
                               "--loglevel=warning", "--without-heartbeat", "--without-gossip", "--without-mingle"],
                              env=env, cwd=settings.BASE_DIR)
    yield worker
    worker.terminate()
    worker.wait(timeout=30)


def test_order_a_vps_pay_and_see_it_running(page, login, screenshot, kvm, kvm_plan, celery_worker):
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
    assert order.paid_at

    # The worker runs the create job; the page's poll reloads it once the VM runs.
    page.get_by_test_id("root-password-waiting").wait_for(timeout=60_000)
    assert celery_worker.poll() is None
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
