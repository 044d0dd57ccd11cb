"""End to end in Chromium against the real hypervisor and a real Celery worker: power the server off
and on from its page (confirmation, htmx state), then reinstall it confirmed by the password."""
from decimal import Decimal

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.services.payments import payment_record
from billing.tests.factories import make_currencies
from orders.models import VirtualMachine

from .hypervisor import disk_backing, hypervisor, kvm, kvm_node, kvm_plan  # noqa: F401
from .test_browser_provisioning import celery_worker  # noqa: F401
from .test_provisioning_libvirt import place, run_queued, state_of
from .test_server_reverse_dns import dns_settings, pdns, ptr_in_pdns  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_power_cycle_rdns_usage_and_reinstall_from_the_service_page(page, login, screenshot, kvm, kvm_plan,  # noqa: F811
                                                                   celery_worker, dns_settings):
    _libvirt, conn, _pool = kvm
    make_currencies()
    owner = UserFactory(first_name="Alex", last_name="Demo")
    payment_record(idempotency_key="browser-power", customer=owner.customer, amount=Decimal("100.00"), currency="EUR",
                   method="bank_transfer")
    order = place(owner.customer, kvm_plan)
    run_queued(order)  # the create job (may already have been taken by the worker)
    vm = VirtualMachine.objects.get(order=order)
    order.refresh_from_db()
    VirtualMachine.objects.filter(pk=vm.pk).update(initial_password="")
    login(owner.username, DEFAULT_PASSWORD)

    page.goto(f"/orders/{order.pk}/")
    state = page.get_by_test_id("server-state")
    state.wait_for()
    assert state.inner_text() == "Running"
    page.get_by_test_id("power-power_off").click()
    assert "like pulling the plug" in page.get_by_test_id("server-confirm").inner_text()
    screenshot("server-power-off-confirm")
    page.get_by_test_id("power-confirm").click()
    page.get_by_test_id("server-notice").wait_for()
    page.locator("[data-testid=server-state]:text('Stopped')").wait_for(timeout=60_000)
    assert state_of(conn, vm.domain) == "shutoff"
    page.get_by_test_id("power-start").click()
    page.get_by_test_id("power-confirm").click()
    page.locator("[data-testid=server-state]:text('Running')").wait_for(timeout=60_000)
    assert state_of(conn, vm.domain) == "running"
    screenshot("server-running-after-power-cycle")

    # Reverse DNS through the real PowerDNS on loopback.
    page.get_by_test_id("action-rdns").click()
    page.get_by_test_id("rdns-hostname").fill("vm1.example.com")
    page.get_by_test_id("rdns-save").click()
    assert "Reverse DNS saved." in page.content()
    assert ptr_in_pdns(dns_settings, order.ip) == ["vm1.example.com."]
    screenshot("server-reverse-dns")

    # Two samples from the hypervisor, then the graphs on the service page.
    from orders.usage import usage_sample_all

    assert usage_sample_all() == 1
    page.wait_for_timeout(1500)
    assert usage_sample_all() == 1
    page.goto(f"/orders/{order.pk}/")
    page.get_by_test_id("usage-24h").locator("svg").wait_for()
    assert "Traffic this period" in page.get_by_test_id("traffic-used").inner_text()
    screenshot("server-usage-graphs")

    page.get_by_test_id("action-reinstall").click()
    page.select_option("select[name=os_image]", "Debian 12")
    page.check("input[name=erase_confirmed]")
    page.fill("input[name=password]", DEFAULT_PASSWORD)
    screenshot("server-reinstall-form")
    page.get_by_test_id("reinstall-submit").click()
    assert "Reinstall started" in page.content()
    for _ in range(30):  # the worker replaces the disk; the password then waits to be shown once
        page.wait_for_timeout(2000)
        page.reload()
        if page.get_by_test_id("root-password-waiting").count():
            break
    assert page.get_by_test_id("root-password-waiting").count() == 1
    assert disk_backing(conn, vm.domain).endswith("/tmpl-b.qcow2")
    screenshot("server-reinstalled")


@pytest.fixture
def websockify(settings):
    """The console process (websockify with our token plugin) on the test database."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from django.db import connection

    port = 6100 + int(os.environ.get("TEST_REDIS_DB", "0"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test",
           "DATABASE_URL": os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]}
    proxy = subprocess.Popen([sys.executable, "-m", "websockify", "--token-plugin",
                              "orders.console_plugin.ConsoleTokenPlugin", "--token-source", "portal",
                              f"127.0.0.1:{port}"], env=env, cwd=settings.BASE_DIR)
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    settings.CONSOLE_WEBSOCKET_URL = f"ws://127.0.0.1:{port}/websockify"
    yield proxy
    proxy.terminate()
    proxy.wait(timeout=10)


def test_the_console_opens_and_the_novnc_canvas_connects(page, login, screenshot, kvm, kvm_plan, websockify):  # noqa: F811
    make_currencies()
    owner = UserFactory()
    payment_record(idempotency_key="browser-console", customer=owner.customer, amount=Decimal("100.00"),
                   currency="EUR", method="bank_transfer")
    order = place(owner.customer, kvm_plan)
    assert run_queued(order) == ["done"]
    login(owner.username, DEFAULT_PASSWORD)
    page.goto(f"/orders/{order.pk}/")
    page.locator("[data-testid=server-state]:text('Running')").wait_for()
    with page.context.expect_page() as opened:
        page.get_by_test_id("action-console").click()
    console = opened.value
    console.locator("[data-testid=console-screen][data-connected=true]").wait_for(timeout=30_000)
    assert console.locator("[data-testid=console-screen] canvas").count() == 1
    assert console.get_by_test_id("console-status").inner_text() == "Connected"
    console.wait_for_timeout(1500)  # let the firmware screen draw
    console.screenshot(path=str(screenshot("server-console-page").parent / "server-console.png"))
    # The page's token is used up: reloading the console URL by GET issues nothing.
    assert console.goto(console.url).status == 405
