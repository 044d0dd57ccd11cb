"""The browser console: one-time, short-lived tokens bound to the user and the VM, redeemed by the
websockify plugin; none for a suspended server, another customer or the Finance role."""
import re
from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import ActivityEvent, User
from accounts.tests.factories import UserFactory
from orders.console import console_redeem
from orders.console_plugin import ConsoleTokenPlugin
from orders.models import ConsoleToken, Order, VirtualMachine
from orders.services import staff

from .hypervisor import domain_xml, hypervisor, kvm, kvm_node, kvm_plan  # noqa: F401
from .test_provisioning_libvirt import active_order
from .test_server_control import server, setting_up  # noqa: F401

pytestmark = pytest.mark.django_db


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

    assert ConsoleTokenPlugin("portal").lookup(token) == ("127.0.0.1", vnc_port)
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


def test_no_console_for_a_suspended_server_another_customer_or_finance(client, owner, customer, server):  # noqa: F811
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
