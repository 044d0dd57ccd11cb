"""Reinstall from the service page: an OS the plan allows, the password (or a 2FA code) again, and
the disk really replaced on the machine's hypervisor; the new root password is shown once."""
from datetime import datetime, timezone as dt_timezone

import pytest
import time_machine
from django.urls import reverse

from accounts.models import ActivityEvent, User
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from orders.models import OsImage, ProvisioningJob, VirtualMachine
from orders.server_forms import ReinstallForm

from .hypervisor import disk_backing, domain_xml, hypervisor, kvm, kvm_node, kvm_plan  # noqa: F401
from .test_provisioning_libvirt import active_order, qemu_read_pattern, run_queued

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=dt_timezone.utc)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKexampleexampleexampleexampleexample new@example"


def reinstall(client, order, **fields):
    data = {"os_image": "Debian 12", "ssh_key": KEY, "erase_confirmed": "on", "password": DEFAULT_PASSWORD,
            "request_id": "c" * 32} | fields
    return client.post(reverse("orders:server_reinstall", args=[order.pk]), data)


@pytest.mark.django_db
@time_machine.travel(T0, tick=True)
def test_reinstall_needs_the_password_and_replaces_the_disk(client, owner, customer, fund, kvm, kvm_plan):  # noqa: F811
    import subprocess

    _libvirt, conn, _pool = kvm
    order = active_order(customer, fund, kvm_plan)
    VirtualMachine.objects.filter(order=order).update(initial_password="")  # the first one was read
    name = VirtualMachine.objects.get(order=order).domain
    disk_path = domain_xml(conn, name).find("devices/disk[@device='disk']/source").get("file")
    from orders.provisioning import module_for

    module_for(order).power_off(order)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 64k", disk_path], check=True, capture_output=True)
    client.force_login(owner)
    page = client.get(reverse("orders:server_reinstall", args=[order.pk])).content.decode()
    assert "Debian 12" in page and 'data-testid="reinstall-form"' in page

    wrong = reinstall(client, order, password="not-my-password")
    assert wrong.status_code == 200 and "The password or code is not correct." in wrong.content.decode()
    hidden = OsImage.objects.create(name="Not on this plan")
    assert reinstall(client, order, os_image=hidden.name).status_code == 200
    assert not ProvisioningJob.objects.filter(order=order, action="reinstall").exists()
    assert VirtualMachine.objects.get(order=order).initial_password == ""  # refused: nothing changed

    assert reinstall(client, order).status_code == 302
    assert reinstall(client, order).status_code == 302  # the same form twice: one job
    job = ProvisioningJob.objects.get(order=order, action="reinstall")
    assert job.params == {"os_image": "Debian 12", "ssh_keys": [KEY]} and job.requested_by == owner
    detail = client.get(reverse("orders:order_detail", args=[order.pk])).content.decode()
    assert 'data-testid="root-password-waiting"' not in detail  # not before the new system exists
    event = ActivityEvent.objects.get(action="server_reinstall")
    assert event.actor == owner and event.details["os_image"] == "Debian 12"

    assert run_queued(order) == ["done"]
    assert disk_backing(conn, name).endswith("/tmpl-b.qcow2")
    assert not qemu_read_pattern(disk_path, "0xab")  # the old data is gone
    seed = open(domain_xml(conn, name).find("devices/disk[@device='cdrom']/source").get("file"), "rb").read()
    assert KEY.split()[1].encode() in seed
    order.refresh_from_db()
    assert order.options["os_image"] == "Debian 12"
    detail = client.get(reverse("orders:order_detail", args=[order.pk])).content.decode()
    assert 'data-testid="root-password-waiting"' in detail
    password = VirtualMachine.objects.get(order=order).initial_password
    shown = client.post(reverse("orders:order_root_password", args=[order.pk])).content.decode()
    assert password and password in shown


@pytest.mark.django_db
def test_reinstall_is_for_the_owner_and_technical_only_and_404_for_others(client, customer, fund, kvm_plan):  # noqa: F811
    from .factories import order_options
    from .test_provisioning_views import finish_create
    from orders.services import placing

    fund(customer, "50.00")
    order = placing.order_place(customer=customer, actor=None, plan=kvm_plan, period_months=1,
                                options=order_options(kvm_plan), idempotency_key="r").order
    finish_create(order)
    url = reverse("orders:server_reinstall", args=[order.pk])
    client.force_login(UserFactory(customer=customer, role=User.Role.FINANCE))
    assert client.get(url).status_code == 403 and reinstall(client, order).status_code == 403
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404 and reinstall(client, order).status_code == 404
    assert not ProvisioningJob.objects.filter(order=order, action="reinstall").exists()


@pytest.mark.django_db
def test_with_two_factor_on_a_code_confirms_the_reinstall_instead_of_the_password(kvm_plan, currencies):  # noqa: F811
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = UserFactory()
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    images = list(OsImage.objects.all())
    base = {"os_image": "Debian 12", "erase_confirmed": "on"}
    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    assert ReinstallForm(base | {"token": code}, user=user, images=images).is_valid()
    assert not ReinstallForm(base | {"token": code}, user=user, images=images).is_valid()  # used up
    assert not ReinstallForm(base, user=user, images=images).is_valid()  # neither password nor code
