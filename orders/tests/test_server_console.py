"""The browser console: one-time, short-lived tokens bound to the user and the VM, redeemed by the
console process (orders/console_relay.py); none for a suspended server, another customer or the
Finance role. A Proxmox VE console runs through the real console process to the PVE stand-in's VNC
websocket."""
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from websockets.exceptions import ConnectionClosedError, InvalidHandshake
from websockets.sync.client import connect

from accounts.models import ActivityEvent, User
from accounts.tests.factories import UserFactory
from orders.console import console_redeem
from orders.console_plugin import ConsoleTokenPlugin
from orders.models import ConsoleToken, Order, VirtualMachine
from orders.provisioning.vnc import exact_reader
from orders.services import staff
from core.tests.net import free_port, wait_for_port

from .hypervisor import domain_xml, hypervisor, kvm, kvm_node, kvm_plan  # noqa: F401
from .pve_server import VNC_NAME
from .test_provisioning_libvirt import active_order
from .test_provisioning_proxmox import (FULL_UPDATE_REQUEST, SECRET, active, base, pve, pve_node,  # noqa: F401
                                        pve_plan, rfb_as_browser, serve_console)
from .test_server_control import server, setting_up  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def console_relay(settings, tmp_path):
    """The console process (`python -m orders.console_relay`) on the test database and a free port; its
    websocket URL. Its log goes to tmp_path/console.log. Its tests commit (django_db(transaction=True)):
    the process reads the tokens."""
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test",
           "DATABASE_URL": os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]}
    log = open(tmp_path / "console.log", "wb")  # noqa: SIM115 - closed after the process
    process = subprocess.Popen([sys.executable, "-m", "orders.console_relay", f"127.0.0.1:{port}"], env=env,
                               cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, what="the console process")
    settings.CONSOLE_WEBSOCKET_URL = f"ws://127.0.0.1:{port}/websockify"
    yield settings.CONSOLE_WEBSOCKET_URL
    process.terminate()
    process.wait(timeout=10)
    log.close()


def open_console(client, order):
    response = client.post(reverse("orders:server_console", args=[order.pk]))
    match = re.search(r'data-token="([^"]+)"', response.content.decode())
    return response, match[1] if match else None


def test_a_console_token_works_once_within_its_ttl_for_its_vm_and_user(client, owner, customer, fund, kvm, kvm_plan,  # noqa: F811
                                                                       settings):
    _libvirt, conn, _pool = kvm
    order = active_order(customer, fund, kvm_plan)
    vm = VirtualMachine.objects.get(order=order)
    vnc_port = int(domain_xml(conn, vm.domain).find("devices/graphics[@type='vnc']").get("port"))
    client.force_login(owner)
    page, token = open_console(client, order)
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    html = page.content.decode()
    assert "/static/orders/console.js" in html and 'data-password="' in html
    assert ConsoleToken.objects.get().digest != token  # only the digest is stored
    assert ActivityEvent.objects.filter(action="server_console", actor=owner).exists()

    assert ConsoleTokenPlugin("portal").lookup(token)[:2] == ("127.0.0.1", vnc_port)
    assert console_redeem(token=token) is None  # used up
    assert console_redeem(token="made-up") is None

    _page, late = open_console(client, order)
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.CONSOLE_TOKEN_TTL + 1)):
        assert console_redeem(token=late) is None  # expired

    _page, demoted = open_console(client, order)
    User.objects.filter(pk=owner.pk).update(role=User.Role.FINANCE)  # the user lost access to servers
    assert console_redeem(token=demoted) is None
    User.objects.filter(pk=owner.pk).update(role=User.Role.OWNER)

    _page, replaced = open_console(client, order)
    VirtualMachine.objects.filter(pk=vm.pk).update(deleted_at=timezone.now())  # not the VM it was issued for
    assert console_redeem(token=replaced) is None


@pytest.mark.parametrize("kind", ["libvirt", "proxmox"])
def test_no_console_for_a_suspended_server_another_customer_or_finance(request, client, owner, customer, kind):
    server = request.getfixturevalue("server") if kind == "libvirt" else request.getfixturevalue("active")[0]
    url = reverse("orders:server_console", args=[server.pk])
    client.force_login(UserFactory())
    assert client.post(url).status_code == 404
    client.force_login(UserFactory(customer=customer, role=User.Role.FINANCE))
    assert client.post(url).status_code == 403
    client.force_login(owner)
    assert client.get(url).status_code == 405  # a GET issues nothing
    with transaction.atomic():
        staff.order_suspend(order=Order.objects.select_for_update().get(pk=server.pk), actor=None)
    refused = client.post(url, follow=True).content.decode()
    assert "The console is available only for an active server." in refused and "data-token" not in refused
    assert not ConsoleToken.objects.exists()


def test_expired_console_tokens_are_purged_after_a_day(owner, server):  # noqa: F811
    from orders.console import console_tokens_purge

    vm = VirtualMachine.objects.get(order=server)
    now = timezone.now()
    old = ConsoleToken.objects.create(digest="a" * 64, user=owner, vm=vm, host="127.0.0.1", port=5900,
                                      expires_at=now - timedelta(days=1, seconds=1))
    recent = ConsoleToken.objects.create(digest="b" * 64, user=owner, vm=vm, host="127.0.0.1", port=5900,
                                         expires_at=now - timedelta(hours=23))
    assert console_tokens_purge(now=now) == 1
    assert list(ConsoleToken.objects.values_list("pk", flat=True)) == [recent.pk] and old.pk != recent.pk


def browser_session(url, token):
    """A websocket to the console process as noVNC opens it, and exact reads over its messages."""
    websocket = connect(f"{url}?token={token}", open_timeout=30, legacy=True)
    return websocket, exact_reader(lambda: websocket.recv(timeout=30))[0]


@pytest.mark.django_db(transaction=True)
def test_a_proxmox_console_relays_the_browser_to_a_fresh_vnc_websocket_once_per_token(client, owner, pve, active,  # noqa: F811
                                                                                     console_relay, tmp_path):
    order, vm = active
    vnc = serve_console(pve, vm)
    client.force_login(owner)
    pve.reset_calls()
    page, token = open_console(client, order)
    html = page.content.decode()
    assert 'data-password=""' in html and SECRET not in html and "PVEAPIToken" not in html
    assert pve.calls == [("GET", f"{base(vm)}/status/current", {})]  # no VNC proxy until the browser connects

    websocket, read = browser_session(console_relay, token)
    try:
        assert rfb_as_browser(read, websocket.send) == VNC_NAME  # PVE → relay → browser, after its VNC login
        websocket.send(FULL_UPDATE_REQUEST)  # browser → relay → PVE …
        assert read(16)[:4] == bytes([0, 0, 0, 1])  # … and its answer back: a FramebufferUpdate, one rectangle
        read(4)
        assert bytes(pve.vnc_received) == FULL_UPDATE_REQUEST
    finally:
        websocket.close()
    assert pve.calls[1:] == [("POST", f"{base(vm)}/vncproxy", {"websocket": "1", "generate-password": "1"}),
                             ("GET", f"{base(vm)}/vncwebsocket", {"port": "5900", "vncticket": vnc["ticket"]})]

    pve.reset_calls()
    with pytest.raises(InvalidHandshake):
        browser_session(console_relay, token)  # used once
    _page, late = open_console(client, order)
    ConsoleToken.objects.filter(used_at__isnull=True).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(InvalidHandshake):
        browser_session(console_relay, late)
    _page, replaced = open_console(client, order)
    VirtualMachine.objects.filter(pk=vm.pk).update(deleted_at=timezone.now())  # not the VM it was issued for
    with pytest.raises(InvalidHandshake):
        browser_session(console_relay, replaced)
    assert [call[1] for call in pve.calls] == [f"{base(vm)}/status/current"] * 2  # the opens; no VNC proxy

    VirtualMachine.objects.filter(pk=vm.pk).update(deleted_at=None)
    _page, refused = open_console(client, order)
    pve.vnc = dict(pve.vnc, ticket="PVEVNC:stale")  # the node refuses the websocket: the browser is told
    websocket, read = browser_session(console_relay, refused)
    with pytest.raises(ConnectionClosedError) as closed:
        read(1)
    assert closed.value.rcvd.code == 1011

    logged = (tmp_path / "console.log").read_text()
    assert "token=[hidden]" in logged  # the one-time tokens never reach the process's log
    assert not [secret for secret in (token, late, replaced, refused) if secret in logged]
