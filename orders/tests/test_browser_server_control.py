"""End to end in Chromium against the real hypervisor and a real Celery worker: power the server off
and on from its page (confirmation, htmx state), then reinstall it confirmed by the password; the
noVNC console of a libvirt VM and of a Proxmox VE VM (the PVE stand-in's VNC websocket)."""
from decimal import Decimal

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from billing.services.payments import payment_record
from billing.tests.factories import make_currencies
from orders.models import VirtualMachine

from .hypervisor import disk_backing, hypervisor, kvm, kvm_node, kvm_plan  # noqa: F401
from .test_browser_provisioning import celery_worker  # noqa: F401
from .test_provisioning_libvirt import place, run_queued, state_of
from .test_provisioning_proxmox import active, pve, pve_node, pve_plan, serve_console  # noqa: F401
from .test_server_console import console_relay  # noqa: F401
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


def console_connected(page, login, owner, order):
    """Sign in, open the running server's console from its page, and wait until noVNC is connected.

    Up to three tries, each with a new one-time token: while libvirt brings up the new VM's tap device
    the host's addresses change, and Chromium aborts the loads in flight with ERR_NETWORK_CHANGED (seen
    when other browser tests ran before this one: noVNC's modules never arrived)."""
    login(owner.username, DEFAULT_PASSWORD)
    page.goto(f"/orders/{order.pk}/")
    page.locator("[data-testid=server-state]:text('Running')").wait_for()
    for attempt in range(3):
        with page.context.expect_page() as opened:
            page.get_by_test_id("action-console").click()
        console = opened.value
        try:
            console.locator("[data-testid=console-screen][data-connected=true]").wait_for(timeout=20_000)
            return console
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
            console.close()
            page.reload()
            page.locator("[data-testid=server-state]:text('Running')").wait_for()


def test_the_console_opens_and_the_novnc_canvas_connects(page, login, screenshot, kvm, kvm_plan, console_relay):  # noqa: F811
    make_currencies()
    owner = UserFactory()
    payment_record(idempotency_key="browser-console", customer=owner.customer, amount=Decimal("100.00"),
                   currency="EUR", method="bank_transfer")
    order = place(owner.customer, kvm_plan)
    assert run_queued(order) == ["done"]
    console = console_connected(page, login, owner, order)
    assert console.locator("[data-testid=console-screen] canvas").count() == 1
    assert console.get_by_test_id("console-status").inner_text() == "Connected"
    console.wait_for_timeout(1500)  # let the firmware screen draw
    console.screenshot(path=str(screenshot("server-console-page").parent / "server-console.png"))
    # The page's token is used up: reloading the console URL by GET issues nothing.
    assert console.goto(console.url).status == 405


def test_a_proxmox_console_connects_novnc_through_the_console_process(page, login, screenshot, owner, pve,  # noqa: F811
                                                                      active, console_relay):
    order, vm = active
    serve_console(pve, vm)
    # Connected: noVNC's ClientInit reached PVE's VNC server (it answers only then) and its ServerInit came back.
    console = console_connected(page, login, owner, order)
    assert console.get_by_test_id("console-status").inner_text() == "Connected"
    console.screenshot(path=str(screenshot("server-console-proxmox-page").parent / "server-console-proxmox.png"))
