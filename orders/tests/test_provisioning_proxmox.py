"""The Proxmox VE module against recorded PVE API responses (no PVE host is reachable here): proxmoxer
talks HTTPS to a replaying server on loopback (pve_server.py), which checks the API token and records
every call, so each test asserts the exact calls made (method, path, parameters) and what the portal
did with the answers. The libvirt module is the one tested against a live hypervisor."""
import struct
from datetime import datetime, timedelta, timezone as dt_timezone
from urllib.parse import quote

import pytest
import time_machine
from django.conf import settings
from django.db import transaction
from django.urls import reverse

from accounts.tests.factories import UserFactory
from orders.services import placing
from orders.models import HypervisorNode, IpAddress, Order, OsImage, OsTemplate, ProductType, ProvisioningJob, UsageSample, VirtualMachine
from orders.provisioning import ModuleError, jobs
from orders.provisioning.base import MachineSpec
from orders.provisioning.nodes import vm_mark
from orders.provisioning.proxmox import ProxmoxModule, net0_with, root_disk
from orders.provisioning.vnc import exact_reader, vnc_auth_response
from orders.usage import traffic_used_bytes, usage_sample_all

from .factories import PlanFactory
from .pve_server import VNC_NAME, RecordedPve, recorded

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=dt_timezone.utc)
TOKEN_ID, SECRET = "portal@pve!provisioning", "9f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKexampleexampleexampleexampleexample test@example"
MAC_NET0 = "virtio=BC:24:11:5E:7A:01,bridge=vmbr0,firewall=1"
Action, State = ProvisioningJob.Action, ProvisioningJob.State
module = ProxmoxModule()


@pytest.fixture
def pve():
    server = RecordedPve(token=f"PVEAPIToken={TOKEN_ID}={SECRET}").start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fast_polling(settings):
    settings.PROVISIONING_PROXMOX_TASK_POLL_SECONDS = 0


@pytest.fixture
def pve_node(pve):
    return HypervisorNode.objects.create(name="pve1", kind=HypervisorNode.Kind.PROXMOX, uri=pve.url, pve_node="pve1",
                                         token_id=TOKEN_ID, token_secret=SECRET, ca_certificate=pve.ca_pem, cpu_capacity=16,
                                         ram_capacity_mib=65536, disk_capacity_gib=1000, storage_pool="local-lvm", bridge="vmbr0")


@pytest.fixture
def pve_plan(pve_node):
    product_type = ProductType.objects.create(code="pve", name="Cloud VPS", provisioner=ProductType.Provisioner.PROXMOX,
                                              order_fields=["hostname", "os_image", "ssh_key"])
    plan = PlanFactory(product_type=product_type, code="pve-s", cpu_cores=2, ram_gb=4, disk_gb=10)
    plan.ip_pool.gateway, plan.ip_pool.nameservers = "10.99.0.254", "9.9.9.9  1.1.1.1"
    plan.ip_pool.save()
    debian = OsImage.objects.create(name="Debian 12", sort_order=1)
    debian.product_types.add(product_type)
    OsTemplate.objects.create(node=pve_node, os_image=product_type.os_images.get(name="Ubuntu 24.04"), volume="9000")
    OsTemplate.objects.create(node=pve_node, os_image=debian, volume="9001")
    return plan


def place(customer, fund, plan, key="p1"):
    fund(customer, "100.00")
    return placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, idempotency_key=key,
                                options={"hostname": "web1.example.com", "os_image": "Ubuntu 24.04", "ssh_key": SSH_KEY}).order


def description(vm, install=None):
    return f"{settings.PORTAL_NAME} order {vm.order_id}\nportal-vm: {vm_mark(vm)}\nportal-install: {install or vm.domain}"


def values(vm, **extra):
    return {"node": "pve1", "vmid": vm.vmid, "template": "9000", "name": vm.domain, "description": description(vm),
            "upid": "UPID:pve1:0012F3A4:0ABCDEF0:6650A1B2:qmclone:9000:portal@pve!provisioning:", **extra}


def upid(name, vm) -> str:
    return recorded(name, **values(vm))["body"]["data"]


def task_status(vm, name):
    return ("GET", f"/nodes/pve1/tasks/{upid(name, vm)}/status", {})


def base(vm) -> str:
    return f"/nodes/pve1/qemu/{vm.vmid}"


def serve_vm(pve, vm, *, state="running", config=None):
    """Routes of an existing VM of ours: its config, its state, every task succeeding at once."""
    v = values(vm)
    pve.route("GET", f"{base(vm)}/config", config or recorded("config", **v))
    pve.route("GET", f"{base(vm)}/status/current", recorded(f"status_{state}", **v))
    pve.route("PUT", f"{base(vm)}/config", recorded("config_put", **v))
    for action in ("start", "shutdown", "reboot", "stop"):
        pve.route("POST", f"{base(vm)}/status/{action}", recorded(action, **v))
    pve.route("PUT", f"{base(vm)}/resize", recorded("resize", **v))
    pve.route("DELETE", base(vm), recorded("destroy", **v))
    pve.route("GET", "/nodes/pve1/tasks/*/status", recorded("task_ok", **v))


def run_queued(order) -> list[str]:
    outcomes = []
    while (job := ProvisioningJob.objects.filter(order=order, state=State.QUEUED).order_by("pk").first()) is not None:
        outcomes.append(jobs.job_run(job_id=job.pk))
        if outcomes[-1] != "done":
            break
    return outcomes


@pytest.fixture
def active(customer, fund, pve, pve_plan):
    """An active order whose VM row exists (placed on pve1) as a finished create leaves it."""
    order = place(customer, fund, pve_plan)
    vm = module._machine(order)
    ProvisioningJob.objects.filter(order=order).update(state=State.DONE)
    with transaction.atomic():
        placing.order_provisioned(order=Order.objects.select_for_update().get(pk=order.pk),
                                   ip=IpAddress.objects.get(order=order).address)
    return Order.objects.get(pk=order.pk), VirtualMachine.objects.select_related("node").get(pk=vm.pk)


@time_machine.travel(T0, tick=True)
def test_a_paid_order_becomes_a_full_clone_configured_by_cloud_init_and_started(pve, pve_plan, customer, fund):
    order = place(customer, fund, pve_plan)
    assert order.provisioning == Order.Provisioning.IN_PROGRESS
    vm = module._machine(order)  # placement: what the create job does first (found again by the job)
    assert (vm.node.name, vm.vmid, vm.template.volume) == ("pve1", 100000 + order.pk, "9000")
    v = values(vm)
    pve.route("GET", f"{base(vm)}/config", recorded("config_missing", **v), recorded("config", **v))
    pve.route("POST", "/nodes/pve1/qemu/9000/clone", recorded("clone", **v))
    pve.route("GET", "/nodes/pve1/tasks/*/status", recorded("task_running", **v), recorded("task_ok", **v))
    pve.route("PUT", f"{base(vm)}/config", recorded("config_put", **v))
    pve.route("PUT", f"{base(vm)}/resize", recorded("resize", **v))
    pve.route("GET", f"{base(vm)}/status/current", recorded("status_stopped", **v))
    pve.route("POST", f"{base(vm)}/status/start", recorded("start", **v))

    assert run_queued(order) == ["done"]

    address = IpAddress.objects.select_related("pool").get(order=order)
    assert pve.calls == [
        ("GET", f"{base(vm)}/config", {}),
        ("POST", "/nodes/pve1/qemu/9000/clone", {"newid": str(vm.vmid), "name": vm.domain, "full": "1",
                                                 "storage": "local-lvm", "description": description(vm)}),
        task_status(vm, "clone"), task_status(vm, "clone"),  # running, then stopped with OK
        ("GET", f"{base(vm)}/config", {}),
        ("PUT", f"{base(vm)}/config", {
            "sockets": "1", "cores": "2", "memory": "4096", "name": "web1", "ciuser": "root",
            "cipassword": vm.initial_password, "net0": MAC_NET0, "onboot": "1",
            "sshkeys": quote(SSH_KEY, safe=""),  # PVE takes the keys URL-encoded
            "ipconfig0": f"ip={address.address}/24,gw=10.99.0.254", "nameserver": "9.9.9.9 1.1.1.1"}),
        ("PUT", f"{base(vm)}/resize", {"disk": "scsi0", "size": "10G"}),  # the template's disk is 2 GiB
        task_status(vm, "resize"),
        ("GET", f"{base(vm)}/status/current", {}),
        ("POST", f"{base(vm)}/status/start", {}),
        task_status(vm, "start"),
    ]
    assert not pve.unexpected
    order.refresh_from_db()
    assert (order.status, order.ip, order.provisioning) == (Order.Status.ACTIVE, address.address, Order.Provisioning.DONE)
    assert VirtualMachine.objects.get(order=order).state == "running"

    # A retry of the create (lost worker) finds the clone and only reconciles: no second clone.
    pve.reset_calls()
    pve.route("GET", f"{base(vm)}/status/current", recorded("status_running", **v))
    pve.route("GET", f"{base(vm)}/config", dict(recorded("config", **v), body={"data": dict(
        recorded("config", **v)["body"]["data"], scsi0=f"local-lvm:vm-{vm.vmid}-disk-0,size=10G")}))
    assert module.create(order) == address.address
    assert [call[:2] for call in pve.calls] == [("GET", f"{base(vm)}/config"), ("PUT", f"{base(vm)}/config"),
                                                ("GET", f"{base(vm)}/status/current")]


@time_machine.travel(T0, tick=True)
def test_power_actions_call_pve_only_when_the_vm_is_not_already_in_that_state(pve, active):
    order, vm = active
    serve_vm(pve, vm, state="running")
    status = ("GET", f"{base(vm)}/status/current", {})
    expected = {
        module.start: [status],
        module.shutdown: [status, ("POST", f"{base(vm)}/status/shutdown", {"timeout": "60"}), task_status(vm, "shutdown")],
        module.reboot: [status, ("POST", f"{base(vm)}/status/reboot", {}), task_status(vm, "reboot")],
        module.power_off: [status, ("POST", f"{base(vm)}/status/stop", {}), task_status(vm, "stop")],
    }
    for action, calls in expected.items():
        pve.reset_calls()
        action(order)
        assert pve.calls == calls, action.__name__
    assert module.status(order) == "running"

    serve_vm(pve, vm, state="stopped")
    pve.reset_calls()
    module.start(order)
    module.shutdown(order)
    module.power_off(order)
    assert pve.calls == [status, ("POST", f"{base(vm)}/status/start", {}), task_status(vm, "start"), status, status]
    assert module.status(order) == "stopped"
    pve.route("GET", f"{base(vm)}/status/current", recorded("config_missing", **values(vm)))
    assert module.status(order) == "missing"


@time_machine.travel(T0, tick=True)
def test_a_customer_reboot_runs_as_a_job_through_the_module(client, owner, pve, active):
    order, vm = active
    serve_vm(pve, vm, state="running")
    client.force_login(owner)
    panel = client.get(reverse("orders:server_state", args=[order.pk]), headers={"HX-Request": "true"}).content.decode()
    assert 'data-state="running"' in panel and 'data-testid="power-reboot"' in panel
    assert 'data-testid="action-console"' in panel
    pve.reset_calls()
    client.post(reverse("orders:server_power", args=[order.pk, "reboot"]), {"request_id": "c" * 32})
    assert run_queued(order) == ["done"]
    assert [call[:2] for call in pve.calls] == [("GET", f"{base(vm)}/status/current"),
                                                ("POST", f"{base(vm)}/status/reboot"), task_status(vm, "reboot")[:2]]


@time_machine.travel(T0, tick=True)
def test_resize_sets_cores_and_memory_grows_the_disk_and_reboots_a_running_vm(pve, active):
    order, vm = active
    serve_vm(pve, vm, state="running")
    with transaction.atomic():
        job = jobs.job_enqueue(order=Order.objects.select_for_update().get(pk=order.pk), action=Action.RESIZE,
                               params={"vcpus": 4, "memory_mib": 8192, "disk_gib": 20})
    assert jobs.job_run(job_id=job.pk) == "done"
    assert pve.calls == [
        ("GET", f"{base(vm)}/config", {}),
        ("GET", f"{base(vm)}/status/current", {}),
        ("PUT", f"{base(vm)}/config", {"sockets": "1", "cores": "4", "memory": "8192"}),
        ("PUT", f"{base(vm)}/resize", {"disk": "scsi0", "size": "20G"}),
        task_status(vm, "resize"),
        ("POST", f"{base(vm)}/status/reboot", {}),  # applies the pending CPU and memory
        task_status(vm, "reboot"),
    ]
    vm.refresh_from_db()
    assert (vm.vcpus, vm.memory_mib, vm.disk_gib) == (4, 8192, 20)

    pve.reset_calls()  # a smaller disk is never applied; same CPU/RAM: no config change, no reboot
    outcome = module.resize(order, MachineSpec(vcpus=1, memory_mib=2048, disk_gib=1))
    assert (outcome.rebooted, outcome.disk_kept_gib) == (False, 20)
    assert pve.calls == [("GET", f"{base(vm)}/config", {}), ("GET", f"{base(vm)}/status/current", {})]


@time_machine.travel(T0, tick=True)
def test_reinstall_destroys_the_vm_and_clones_the_chosen_template_keeping_vmid_and_mac(pve, active, owner):
    from orders import server_control

    order, vm = active
    job = server_control.server_reinstall(order=order, os_image="Debian 12", ssh_key="ssh-ed25519 AAAAnew new@example",
                                          request_id="d" * 32, actor=owner, ip="203.0.113.9")
    vm.refresh_from_db()
    install = f"{vm.domain}-job-{job.pk}"
    v = values(vm, template="9001")
    new_config = recorded("config", **values(vm, description=description(vm, install)))
    new_config["body"]["data"]["net0"] = "virtio=BC:24:11:00:00:99,bridge=vmbr0,firewall=1"  # a clone gets a new MAC
    serve_vm(pve, vm, state="running")
    pve.route("GET", f"{base(vm)}/config", recorded("config", **v), new_config)
    pve.route("GET", f"{base(vm)}/status/current", recorded("status_running", **v), recorded("status_stopped", **v))
    pve.route("POST", "/nodes/pve1/qemu/9001/clone", recorded("clone", **v))

    assert run_queued(order) == ["done"]
    assert pve.calls == [
        ("GET", f"{base(vm)}/config", {}),
        ("GET", f"{base(vm)}/status/current", {}),
        ("POST", f"{base(vm)}/status/stop", {}), task_status(vm, "stop"),
        ("DELETE", base(vm), {"purge": "1", "destroy-unreferenced-disks": "1"}), task_status(vm, "destroy"),
        ("POST", "/nodes/pve1/qemu/9001/clone", {"newid": str(vm.vmid), "name": vm.domain, "full": "1",
                                                 "storage": "local-lvm", "description": description(vm, install)}),
        ("GET", f"/nodes/pve1/tasks/{recorded('clone', **v)['body']['data']}/status", {}),
        ("GET", f"{base(vm)}/config", {}),
        ("PUT", f"{base(vm)}/config", {
            "sockets": "1", "cores": "2", "memory": "4096", "name": "web1", "ciuser": "root",
            "cipassword": vm.initial_password, "net0": MAC_NET0, "onboot": "1",  # the old MAC address kept
            "sshkeys": quote("ssh-ed25519 AAAAnew new@example", safe=""),
            "ipconfig0": f"ip={order.ip}/24,gw=10.99.0.254", "nameserver": "9.9.9.9 1.1.1.1"}),
        ("PUT", f"{base(vm)}/resize", {"disk": "scsi0", "size": "10G"}), task_status(vm, "resize"),
        ("GET", f"{base(vm)}/status/current", {}),
        ("POST", f"{base(vm)}/status/start", {}), task_status(vm, "start"),
    ]
    vm.refresh_from_db()
    assert vm.template.volume == "9001" and vm.initial_password  # shown to the customer once


@time_machine.travel(T0, tick=True)
def test_destroy_stops_and_purges_the_vm_and_a_vm_already_gone_is_success(pve, active):
    order, vm = active
    serve_vm(pve, vm, state="running")
    module.terminate(order)
    assert pve.calls == [
        ("GET", f"{base(vm)}/config", {}),
        ("GET", f"{base(vm)}/status/current", {}),
        ("POST", f"{base(vm)}/status/stop", {}), task_status(vm, "stop"),
        ("DELETE", base(vm), {"purge": "1", "destroy-unreferenced-disks": "1"}), task_status(vm, "destroy"),
    ]
    pve.reset_calls()
    pve.route("GET", f"{base(vm)}/config", recorded("config_missing", **values(vm)))
    module.terminate(order)
    assert pve.calls == [("GET", f"{base(vm)}/config", {})]


@time_machine.travel(T0, tick=True)
def test_a_vm_of_another_record_on_our_vmid_is_never_touched(pve, active):
    order, vm = active
    serve_vm(pve, vm, config=recorded("config", **values(vm, description="portal-vm: 7@2025-01-01T00:00:00+00:00")))
    with transaction.atomic():
        job = jobs.job_enqueue(order=Order.objects.select_for_update().get(pk=order.pk), action=Action.TERMINATE)
    assert jobs.job_run(job_id=job.pk) == "failed"  # NotSupported: staff look, no retry
    assert "belongs to another VM record (7@2025-01-01" in ProvisioningJob.objects.get(pk=job.pk).last_error
    assert [call[0] for call in pve.calls] == ["GET"]


def serve_console(pve, vm, *, password=None):
    """The VM running, vncproxy answering as recorded, and the VNC websocket behind its ticket."""
    serve_vm(pve, vm, state="running")
    proxy = recorded("vncproxy", **values(vm))
    pve.route("POST", f"{base(vm)}/vncproxy", proxy)
    pve.vnc_console(ticket=proxy["body"]["data"]["ticket"], password=password or proxy["body"]["data"]["password"],
                    port=proxy["body"]["data"]["port"])
    return proxy["body"]["data"]


def rfb_as_browser(read, write) -> bytes:
    """What noVNC does up to ServerInit against a server offering no authentication; the desktop name."""
    assert read(12) == b"RFB 003.008\n"
    write(b"RFB 003.008\n")
    assert read(2) == bytes([1, 1])  # one security type: None (the console process logged in)
    write(b"\x01")
    assert read(4) == bytes(4)  # SecurityResult OK
    write(b"\x01")  # ClientInit, shared
    width, height = struct.unpack(">HH", read(4))
    read(16)  # pixel format
    (length,) = struct.unpack(">I", read(4))
    assert (width, height) == (640, 480)
    return read(length)


FULL_UPDATE_REQUEST = struct.pack(">BBHHHH", 3, 0, 0, 0, 640, 480)


@time_machine.travel(T0, tick=True)
def test_the_console_checks_the_vm_runs_then_streams_from_a_fresh_vnc_proxy_it_logs_into(pve, active):
    order, vm = active
    vnc = serve_console(pve, vm)
    ticket = module.console_ticket(order)  # the customer opens the console: no VNC proxy yet
    assert (ticket.host, ticket.port, ticket.password) == ("127.0.0.1", pve.port, "")
    assert pve.calls == [("GET", f"{base(vm)}/status/current", {})]
    serve_vm(pve, vm, state="stopped")
    with pytest.raises(ModuleError, match="not running"):
        module.console_ticket(order)

    serve_vm(pve, vm, state="running")
    pve.reset_calls()
    stream = module.console_stream(order)  # the browser connected to the console process
    try:
        assert pve.calls == [("POST", f"{base(vm)}/vncproxy", {"websocket": "1", "generate-password": "1"}),
                             ("GET", f"{base(vm)}/vncwebsocket", {"port": "5900", "vncticket": vnc["ticket"]})]
        read, _rest = exact_reader(lambda: stream.recv(4096))
        assert rfb_as_browser(read, stream.sendall) == VNC_NAME
        stream.sendall(FULL_UPDATE_REQUEST)
        assert read(4 + 12) == struct.pack(">BxHHHHHi", 0, 1, 0, 0, 1, 1, 0)  # one raw 1x1 rectangle
        assert read(4) == bytes(4)
        assert bytes(pve.vnc_received) == FULL_UPDATE_REQUEST
    finally:
        stream.close()

    serve_console(pve, vm, password="not-this")  # PVE's VNC server refuses the password
    with pytest.raises(ModuleError, match="refused the password: Authentication failed"):
        module.console_stream(order)
    pve.vnc = dict(pve.vnc, ticket="PVEVNC:stale")  # the node refuses the websocket
    with pytest.raises(ModuleError, match="the VNC websocket failed: InvalidStatus: .*HTTP 401"):
        module.console_stream(order)
    HypervisorNode.objects.update(ca_certificate="")
    with pytest.raises(ModuleError, match="TLS verification failed"):
        module.console_stream(order)


def test_vnc_authentication_is_des_of_the_challenge_with_the_bit_reversed_password():
    # Computed apart: `openssl enc -des-ecb -K d6ccdc6a9c4e848e -nopad` (the key: each byte of
    # "k3;V9r!q" with its bits reversed) over the bytes 00…0f.
    assert vnc_auth_response("k3;V9r!q", bytes(range(16))).hex() == "81f839285c8f3e349f59265494ab7547"


def test_usage_samples_integrate_rrd_averages_into_the_usage_table(pve, active):
    order, vm = active
    serve_vm(pve, vm)
    pve.route("GET", f"{base(vm)}/rrddata", recorded("rrddata", **values(vm)))
    with time_machine.travel(T0 - timedelta(minutes=3, seconds=30), tick=False):
        Order.objects.filter(pk=order.pk).update(anchor_at=T0 - timedelta(hours=1))  # its traffic period began
        assert usage_sample_all() == 1  # the first sample is the zero base: nothing to ask yet
    assert pve.calls == []
    with time_machine.travel(T0 + timedelta(minutes=1, seconds=30), tick=False):
        assert usage_sample_all() == 1
    assert pve.calls == [("GET", f"{base(vm)}/rrddata", {"timeframe": "hour", "cf": "AVERAGE"})]
    latest = UsageSample.objects.filter(vm=vm).latest("taken_at")
    # The points 08:57 … 09:00 (60 s each) fall after the first sample; 09:01 has no values yet.
    assert (latest.net_rx_bytes, latest.net_tx_bytes) == (4 * 60 * 1000.5, 4 * 60 * 250.25)
    assert (latest.disk_read_bytes, latest.disk_write_bytes) == (4 * 60 * 4096, 4 * 60 * 8192)
    assert latest.cpu_time_ns == 4 * 60 * 2 * 10 ** 9 // 4  # a quarter of 2 vCPUs for 4 minutes
    assert traffic_used_bytes(Order.objects.get(pk=order.pk), now=T0) == 240120 + 60060


@time_machine.travel(T0, tick=True)
def test_bandwidth_is_net0_rate_in_megabytes_per_second_and_is_lifted_by_removing_it(pve, active):
    order, vm = active
    serve_vm(pve, vm)
    module.set_bandwidth(order, 10)
    assert pve.calls == [("GET", f"{base(vm)}/config", {}),
                         ("PUT", f"{base(vm)}/config", {"net0": MAC_NET0 + ",rate=1.25"})]
    throttled = recorded("config", **values(vm))
    throttled["body"]["data"]["net0"] = MAC_NET0 + ",rate=1.25"
    pve.route("GET", f"{base(vm)}/config", throttled)
    pve.reset_calls()
    module.set_bandwidth(order, None)
    assert pve.calls[1] == ("PUT", f"{base(vm)}/config", {"net0": MAC_NET0})


def test_net0_and_disk_parsing():
    assert net0_with("virtio=AA:BB:CC:DD:EE:FF,bridge=vmbr1,rate=3,tag=12", bridge="vmbr0", mbps=80) == \
        "virtio=AA:BB:CC:DD:EE:FF,bridge=vmbr0,tag=12,rate=10"
    assert net0_with("", bridge="vmbr0", mbps=None) == "virtio,bridge=vmbr0"
    assert root_disk({"boot": "order=ide2;virtio0", "ide2": "local:iso/x.iso,media=cdrom",
                      "virtio0": "ceph:vm-1-disk-0,size=512M"})[0] == "virtio0"
    assert root_disk({"bootdisk": "scsi0", "scsi0": "local-lvm:vm-1-disk-0,size=1T"})[1] == 1024


# --- failures: the job's retry path -------------------------------------------------------------------

def _create_job(order):
    return ProvisioningJob.objects.get(order=order, action=Action.CREATE)


@time_machine.travel(T0, tick=True)
def test_a_task_that_exits_with_an_error_is_retried_with_its_exit_status(pve, pve_plan, customer, fund):
    order = place(customer, fund, pve_plan)
    vm = module._machine(order)
    v = values(vm)
    pve.route("GET", f"{base(vm)}/config", recorded("config_missing", **v))
    pve.route("POST", "/nodes/pve1/qemu/9000/clone", recorded("clone", **v))
    pve.route("GET", "/nodes/pve1/tasks/*/status", recorded("task_failed", **v))
    assert jobs.job_run(job_id=_create_job(order).pk) == "retry"
    job = _create_job(order)
    assert job.state == State.QUEUED and "Task qmclone on VM" in job.last_error
    assert "insufficient free space" in job.last_error
    assert Order.objects.get(pk=order.pk).status == Order.Status.PENDING


@time_machine.travel(T0, tick=True)
def test_a_task_that_does_not_finish_in_time_is_retried(settings, pve, pve_plan, customer, fund):
    settings.PROVISIONING_PROXMOX_TASK_TIMEOUT = 0
    order = place(customer, fund, pve_plan)
    vm = module._machine(order)
    v = values(vm)
    pve.route("GET", f"{base(vm)}/config", recorded("config_missing", **v))
    pve.route("POST", "/nodes/pve1/qemu/9000/clone", recorded("clone", **v))
    pve.route("GET", "/nodes/pve1/tasks/*/status", recorded("task_running", **v))
    assert jobs.job_run(job_id=_create_job(order).pk) == "retry"
    assert f"Task {upid('clone', vm)} did not finish within 0 s" in _create_job(order).last_error

    # The retry finds the clone still locked by its task: retried again, nothing cloned twice.
    locked = recorded("config", **v)
    locked["body"]["data"]["lock"] = "clone"
    pve.route("GET", f"{base(vm)}/config", locked)
    ProvisioningJob.objects.filter(order=order).update(next_attempt_at=T0)
    pve.reset_calls()
    assert jobs.job_run(job_id=_create_job(order).pk) == "retry"
    assert "is locked (clone)" in _create_job(order).last_error and pve.calls == [("GET", f"{base(vm)}/config", {})]


@time_machine.travel(T0, tick=True)
def test_a_rejected_token_fails_the_job_at_once_without_leaking_the_secret(pve, pve_plan, customer, fund):
    HypervisorNode.objects.update(token_secret="revoked-secret")
    order = place(customer, fund, pve_plan)
    assert jobs.job_run(job_id=_create_job(order).pk) == "failed"
    job = _create_job(order)
    assert (job.state, job.attempts) == (State.FAILED, 1)
    assert "refused the API token portal@pve!provisioning: 401" in job.last_error
    assert "revoked-secret" not in job.last_error and SECRET not in job.last_error
    assert Order.objects.get(pk=order.pk).provisioning == Order.Provisioning.FAILED


@time_machine.travel(T0, tick=True)
def test_a_node_that_is_down_or_untrusted_is_retried(pve, pve_plan, customer, fund):
    order = place(customer, fund, pve_plan)
    HypervisorNode.objects.update(ca_certificate="")  # the system's CAs do not know this node's
    assert jobs.job_run(job_id=_create_job(order).pk) == "retry"
    assert "TLS verification failed" in _create_job(order).last_error
    pve.stop()
    HypervisorNode.objects.update(ca_certificate=pve.ca_pem)
    ProvisioningJob.objects.filter(order=order).update(next_attempt_at=T0)
    assert jobs.job_run(job_id=_create_job(order).pk) == "retry"
    assert "Cannot reach node pve1" in _create_job(order).last_error and pve.url in _create_job(order).last_error


# --- staff configuration -------------------------------------------------------------------------

def test_the_token_secret_is_write_only_in_admin_and_the_health_check_asks_the_node(client, pve, pve_node):
    from portal.tests.test_backoffice import run_action

    admin_user = UserFactory(customer=None, is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    url = reverse("admin:orders_hypervisornode_change", args=[pve_node.pk])
    page = client.get(url).content.decode()
    assert 'name="token_secret"' in page and SECRET not in page
    form = {"name": "pve1", "kind": "proxmox", "uri": pve.url, "cpu_capacity": 16, "ram_capacity_mib": 65536,
            "disk_capacity_gib": 1000, "storage_pool": "local-lvm", "network": "", "bridge": "vmbr0", "pve_node": "pve1",
            "token_id": TOKEN_ID, "token_secret": "", "ca_certificate": pve.ca_pem, "is_active": "on",
            "templates-TOTAL_FORMS": 0, "templates-INITIAL_FORMS": 0}
    assert client.post(url, form).status_code == 302
    assert HypervisorNode.objects.get().token_secret == SECRET  # blank keeps the stored secret
    bad = client.post(url, dict(form, token_id="portal", uri="http://pve1:8006")).content.decode()
    assert "Use the form user@realm!token-name." in bad and "Give the API URL as https://host:8006." in bad

    from accounts.tests.factories import StaffUserFactory
    from django.contrib.auth.models import Permission

    viewer = StaffUserFactory(is_superuser=False)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_hypervisornode"))
    client.force_login(viewer)
    page = client.get(url).content.decode()
    assert page.count("portal@pve!provisioning") >= 1 and SECRET not in page and "API token secret" not in page
    client.force_login(admin_user)

    pve.route("GET", "/nodes/pve1/status", recorded("node_status"))
    pve.route("GET", "/nodes/pve1/storage/local-lvm/status", recorded("storage_status"))
    run_action(client, admin_user, "orders_hypervisornode", "check_health", [pve_node.pk])
    pve_node.refresh_from_db()
    assert pve_node.check_ok is True
    assert pve_node.check_message == "16 CPUs, 64244 MiB RAM; storage local-lvm: 800 of 1024 GiB free; pve-manager/8.3.0/c1689ccb1065a83b"
    assert pve.calls == [("GET", "/nodes/pve1/status", {}), ("GET", "/nodes/pve1/storage/local-lvm/status", {})]


def test_a_proxmox_template_is_a_vmid(pve_node):
    from django.core.exceptions import ValidationError

    template = OsTemplate(node=pve_node, os_image=OsImage.objects.create(name="Alma 9"), volume="alma.qcow2")
    with pytest.raises(ValidationError, match="VMID"):
        template.full_clean()
