"""Proxmox VE: QEMU VMs on staff-defined Proxmox VE nodes (`HypervisorNode`, kind proxmox), full clones
of a template VM per OS image, configured with Proxmox's own cloud-init drive, through the PVE HTTP
API (proxmoxer, API-token authentication). Placement and the VM row are shared with the libvirt
module (nodes.py); a VM's VMID is PROVISIONING_PROXMOX_VMID_BASE + the order's id, so a retried job
finds the VM it made. Its description names its `VirtualMachine` row: a VM with that VMID made by
another database is never adopted, changed or destroyed.

The calls it makes ({n}: the node's `pve_node`, {id}: the VM's VMID, {t}: the template's VMID):

- create: GET /nodes/{n}/qemu/{id}/config (absent: POST /nodes/{n}/qemu/{t}/clone newid, name,
  full=1, storage, description; then GET the config again), PUT /nodes/{n}/qemu/{id}/config (sockets,
  cores, memory, name, ciuser, cipassword, sshkeys, ipconfig0, nameserver, net0, onboot), PUT
  /nodes/{n}/qemu/{id}/resize (disk, size) when the plan's disk is larger than the template's, GET
  /nodes/{n}/qemu/{id}/status/current and POST /nodes/{n}/qemu/{id}/status/start;
- start, shutdown, reboot, power off: GET …/status/current, then POST …/status/start | shutdown
  (timeout) | reboot | stop when the VM is not already in that state;
- suspend / unsuspend: PUT …/config onboot=0|1, POST …/status/shutdown (timeout, forceStop=1) | start;
- resize: GET …/config, PUT …/config (cores, memory), PUT …/resize (disks only grow), POST
  …/status/reboot (it applies the pending CPU/RAM) when CPU or RAM changed on a running VM;
- reinstall: GET …/config, POST …/status/stop, DELETE /nodes/{n}/qemu/{id} (purge=1,
  destroy-unreferenced-disks=1), a new clone of the chosen template and the create's configuration
  (a new cloud-init password and keys; the old network card's MAC address is kept);
- terminate: GET …/config, POST …/status/stop, DELETE /nodes/{n}/qemu/{id} (purge,
  destroy-unreferenced-disks); a VM already gone is success;
- status: GET …/status/current (`status`, `qmpstatus`);
- console: opening it checks GET …/status/current; when the browser connects, POST …/vncproxy
  (websocket=1, generate-password=1) → port, ticket, password, then the websocket GET
  /api2/json/nodes/{n}/qemu/{id}/vncwebsocket?port=…&vncticket=… (see `console_stream`);
- usage: GET …/rrddata (timeframe hour or day, cf AVERAGE), integrated into cumulative counters;
- bandwidth: GET …/config and PUT …/config net0 with `rate` (MB/s) set or removed;
- health (admin): GET /nodes/{n}/status and GET /nodes/{n}/storage/{storage}/status.

Every call that starts a PVE task returns its UPID; the module polls GET /nodes/{n}/tasks/{upid}/status
until `status` is "stopped" and requires `exitstatus` "OK" (or "WARNINGS: n"), for at most
PROVISIONING_PROXMOX_TASK_TIMEOUT seconds. Errors become `ModuleError`s for the job's retry path:
node unreachable, PVE errors, failed or unfinished tasks are retried with back-off; a rejected token
(401/403) fails the job at once (staff fix the token and retry). Messages never hold the token.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import socket
import ssl
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from django.conf import settings
from django.utils import timezone

from orders.models import HypervisorNode, IpAddress, Order, OsTemplate, UsageSample as UsageRow, VirtualMachine

from .base import ConsoleTicket, MachineSpec, ModuleError, NotSupported, Operation, ResizeOutcome, UsageSample
from .nodes import NodeModule, vm_mark
from .vnc import websocket_console

GIB = 1024 ** 3
DISK_KEY = re.compile(r"^(scsi|virtio|sata|ide)\d+$")
SIZE_UNITS = {"K": Decimal(1) / 1024 ** 2, "M": Decimal(1) / 1024, "G": Decimal(1), "T": Decimal(1024), "": Decimal(1) / GIB}
HOSTNAME = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$")


class NodeAuthError(ModuleError):
    """The node refused the API token (401/403): retrying cannot help until staff fix it."""

    retryable = False


def vmid_for(order: Order) -> int:
    return settings.PROVISIONING_PROXMOX_VMID_BASE + order.pk


def _ca_file(pem: str) -> str:
    """requests verifies against a file: the node's CA, written once under a name from its digest."""
    digest = hashlib.sha256(pem.encode()).hexdigest()[:32]
    path = Path(tempfile.gettempdir()) / "portal-proxmox-ca" / f"{digest}.pem"
    if not path.exists():
        path.parent.mkdir(mode=0o700, exist_ok=True)
        partial = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        partial.write_text(pem)
        partial.replace(path)
    return str(path)


def client(node: HypervisorNode):
    """A proxmoxer client for the node's API with its token (TLS verified: the node's CA or the system's)."""
    from proxmoxer import ProxmoxAPI

    url = urlsplit(node.uri)
    user, _sep, token_name = node.token_id.partition("!")
    return ProxmoxAPI(url.hostname, port=url.port or 8006, user=user, token_name=token_name,
                      token_value=node.token_secret, verify_ssl=_ca_file(node.ca_certificate) if node.ca_certificate else True,
                      timeout=settings.PROVISIONING_PROXMOX_HTTP_TIMEOUT)


def _translate(error: Exception, node: HypervisorNode) -> ModuleError:
    """A proxmoxer/requests failure as the job's error (never the token: it travels only in a header)."""
    import requests
    from proxmoxer import AuthenticationError, ResourceException

    if isinstance(error, ResourceException):
        if error.status_code in (401, 403):
            return NodeAuthError(f"Node {node.name} refused the API token {node.token_id}: {error.status_code} "
                                 f"{error.status_message}. Fix the token in admin, then retry the job.")
        return ModuleError(f"Node {node.name}: {str(error)[:500]}")
    if isinstance(error, AuthenticationError):
        return NodeAuthError(f"Node {node.name}: authentication failed.")
    if isinstance(error, requests.exceptions.SSLError):
        return ModuleError(f"Node {node.name} ({node.uri}): TLS verification failed; check its CA certificate.")
    if isinstance(error, requests.exceptions.RequestException):
        return ModuleError(f"Cannot reach node {node.name} ({node.uri}): {type(error).__name__}.")
    return ModuleError(f"Node {node.name}: {type(error).__name__}: {str(error)[:300]}")


def _missing(error: Exception) -> bool:
    """PVE answers 500 "Configuration file 'nodes/…/qemu-server/<id>.conf' does not exist" for a VM that is not there."""
    from proxmoxer import ResourceException

    return isinstance(error, ResourceException) and error.status_code == 500 and "does not exist" in str(error)


def _size_gib(drive: str) -> Decimal:
    match = re.search(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)", drive)
    return Decimal(match.group(1)) * SIZE_UNITS[match.group(2)] if match else Decimal(0)


def root_disk(config: dict) -> tuple[str, Decimal]:
    """The boot disk's key (scsi0, virtio0, …) and size in GiB: the first disk of the boot order that
    is neither a CD-ROM nor the cloud-init drive."""
    boot = re.search(r"order=([^,]+)", config.get("boot", ""))
    keys = (boot.group(1).split(";") if boot else [config.get("bootdisk", "")]) + sorted(k for k in config if DISK_KEY.match(k))
    for key in keys:
        drive = config.get(key, "")
        if DISK_KEY.match(key) and drive and "media=cdrom" not in drive and "cloudinit" not in drive:
            return key, _size_gib(drive)
    raise ModuleError("The VM has no disk to boot from; is the template set up with one?")


def net0_with(current: str, *, bridge: str, mbps: int | None, mac: str | None = None) -> str:
    """net0 as PVE spells it, `virtio=<MAC>,bridge=vmbr0[,rate=<MB/s>]`, other options kept. PVE's rate
    is in megabytes per second: N Mbit/s = N/8."""
    parts = [part for part in (current or "virtio").split(",") if part]
    model, _sep, old_mac = parts[0].partition("=")
    head = f"{model}={mac or old_mac}" if (mac or old_mac) else model
    rest = [part for part in parts[1:] if not part.startswith(("bridge=", "rate="))]
    rest.insert(0, f"bridge={bridge}")
    if mbps:
        rest.append(f"rate={format((Decimal(mbps) / 8).normalize(), 'f')}")
    return ",".join([head, *rest])


def net0_mac(config: dict | None) -> str | None:
    if not config or "=" not in config.get("net0", "").split(",")[0]:
        return None
    return config["net0"].split(",")[0].partition("=")[2] or None


def _marks(config: dict) -> dict:
    """`portal-vm:` and `portal-install:` lines of the VM's description."""
    found = {}
    for line in (config.get("description") or "").splitlines():
        key, _sep, value = line.partition(":")
        if key.strip() in ("portal-vm", "portal-install"):
            found[key.strip()] = value.strip()
    return found


@dataclass
class _Session:
    """One job's connection: the client, the node's PVE name and the VM's VMID."""

    api: object
    node: str
    vmid: int

    @property
    def vm(self):
        return self.api.nodes(self.node).qemu(self.vmid)


class ProxmoxModule(NodeModule):
    code = "proxmox"
    name = "Proxmox VE"
    node_kind = HypervisorNode.Kind.PROXMOX
    operations = frozenset(Operation)

    def _new_vm_fields(self, order: Order) -> dict:
        return {"vmid": vmid_for(order)}

    def node_health(self, node: HypervisorNode) -> tuple[bool, str]:
        try:
            api = client(node)
            status = api.nodes(node.pve_node).status.get()
            storage = api.nodes(node.pve_node).storage(node.storage_pool).status.get()
        except Exception as error:  # noqa: BLE001 - every failure is the health check's answer
            return False, str(_translate(error, node))
        memory = status.get("memory") or {}
        return True, (f"{(status.get('cpuinfo') or {}).get('cpus', '?')} CPUs, {int(memory.get('total', 0)) // 1024 ** 2} MiB RAM; "
                      f"storage {node.storage_pool}: {int(storage.get('avail', 0)) // GIB} of {int(storage.get('total', 0)) // GIB} "
                      f"GiB free; {status.get('pveversion', '')}".strip())

    # --- the API ------------------------------------------------------------------------------------
    def _call(self, order: Order, action, vm: VirtualMachine | None = None):
        """Run `action(session, vm)` against the VM's node, translating failures into ModuleErrors."""
        vm = vm or self._vm(order)
        if vm.vmid is None:
            raise NotSupported(f"VM {vm.domain} has no Proxmox VMID.")
        try:
            session = _Session(api=client(vm.node), node=vm.node.pve_node, vmid=vm.vmid)
            return action(session, vm)
        except ModuleError:
            raise
        except Exception as error:  # noqa: BLE001 - proxmoxer, requests, TLS: all become the job's error
            raise _translate(error, vm.node) from None

    @staticmethod
    def _wait(session: _Session, upid) -> None:
        """Poll a task until it stops; its exit status must be OK (warnings pass)."""
        if not upid:  # older PVE answers some calls (resize) synchronously, with null
            return
        deadline = time.monotonic() + settings.PROVISIONING_PROXMOX_TASK_TIMEOUT
        while True:
            status = session.api.nodes(session.node).tasks(upid).status.get()
            if status.get("status") == "stopped":
                exit_status = str(status.get("exitstatus", ""))
                if exit_status != "OK" and not exit_status.startswith("WARNINGS"):
                    raise ModuleError(f"Task {status.get('type', '?')} on VM {session.vmid} failed: {exit_status[:300]}")
                return
            if time.monotonic() >= deadline:
                raise ModuleError(f"Task {upid} did not finish within {settings.PROVISIONING_PROXMOX_TASK_TIMEOUT:g} s; "
                                  "the retry picks up what it did.")
            time.sleep(settings.PROVISIONING_PROXMOX_TASK_POLL_SECONDS)

    @staticmethod
    def _config(session: _Session) -> dict | None:
        try:
            return session.vm.config.get()
        except Exception as error:
            if _missing(error):
                return None
            raise

    def _our_config(self, session: _Session, vm: VirtualMachine) -> dict:
        config = self._config(session)
        if config is None:
            raise ModuleError(f"VM {session.vmid} does not exist on node {vm.node.name}.")
        self._check_ours(config, vm)
        return config

    @staticmethod
    def _check_ours(config: dict, vm: VirtualMachine) -> None:
        mark = _marks(config).get("portal-vm")
        if mark != vm_mark(vm):
            raise NotSupported(f"VM {vm.vmid} on node {vm.node.name} belongs to another VM record ({mark or 'no portal mark'}); "
                               "not touching it. Remove it or change PROVISIONING_PROXMOX_VMID_BASE.")
        if config.get("lock"):
            raise ModuleError(f"VM {vm.vmid} is locked ({config['lock']}): a task is still running on it.")

    def _state(self, session: _Session) -> str:
        try:
            current = session.vm.status.current.get()
        except Exception as error:
            if _missing(error):
                return "missing"
            raise
        if current.get("status") == "running":
            return "paused" if current.get("qmpstatus") == "paused" else "running"
        return "stopped"

    def _power(self, session: _Session, action: str, **parameters) -> None:
        self._wait(session, getattr(session.vm.status, action).post(**parameters))

    def _clone(self, session: _Session, vm: VirtualMachine, template: OsTemplate, install: str) -> dict:
        description = f"{settings.PORTAL_NAME} order {vm.order_id}\nportal-vm: {vm_mark(vm)}\nportal-install: {install}"
        upid = session.api.nodes(session.node).qemu(int(template.volume)).clone.post(
            newid=session.vmid, name=vm.domain, full=1, storage=vm.node.storage_pool, description=description)
        self._wait(session, upid)
        return self._our_config(session, vm)

    def _configure(self, session: _Session, vm: VirtualMachine, order: Order, config: dict, *, ssh_keys: list[str],
                   mac: str | None = None) -> None:
        """Size, cloud-init (user, password, keys, static address, DNS), network card and autostart."""
        address = IpAddress.objects.select_related("pool").filter(order=order, extra=False).first()
        hostname = ((order.options or {}).get("hostname") or "").split(".", 1)[0]
        parameters = {
            "sockets": 1, "cores": vm.vcpus, "memory": vm.memory_mib,
            "name": hostname if HOSTNAME.match(hostname) else vm.domain,
            "ciuser": "root", "cipassword": vm.initial_password or secrets.token_urlsafe(12),
            "net0": net0_with(config.get("net0", ""), bridge=vm.node.bridge, mbps=vm.bandwidth_mbps, mac=mac),
            "onboot": 1,
        }
        if ssh_keys:
            # PVE wants the keys URL-encoded (spaces as %20), one per line.
            parameters["sshkeys"] = quote("\n".join(ssh_keys), safe="")
        if address is not None:
            pool = address.pool
            if ipaddress.ip_address(address.address).version == 4:
                parameters["ipconfig0"] = f"ip={address.address}/{pool.prefix_length}" + (f",gw={pool.gateway}" if pool.gateway else "")
            else:
                parameters["ipconfig0"] = f"ip6={address.address}/{pool.prefix_length}" + (f",gw6={pool.gateway}" if pool.gateway else "")
            if pool.nameservers.strip():
                parameters["nameserver"] = " ".join(pool.nameservers.split())
        session.vm.config.put(**parameters)

    def _grow_disk(self, session: _Session, config: dict, gib: int) -> bool:
        key, size = root_disk(config)
        if gib <= size:
            return False
        self._wait(session, session.vm.resize.put(disk=key, size=f"{gib}G"))
        return True

    def _destroy(self, session: _Session) -> None:
        self._wait(session, session.vm.delete(purge=1, **{"destroy-unreferenced-disks": 1}))

    # --- operations -----------------------------------------------------------------------------------
    def create(self, order: Order) -> str:
        vm = self._machine(order)
        address = IpAddress.objects.filter(order=order, extra=False).values_list("address", flat=True).first()
        keys = [key for key in [(order.options or {}).get("ssh_key", "")] if key]

        def run(session, vm):
            config = self._config(session)
            if config is None:
                if vm.template is None:
                    raise NotSupported(f"VM {vm.domain} has no OS template to clone.")
                config = self._clone(session, vm, vm.template, install=vm.domain)
            else:
                self._check_ours(config, vm)
            self._configure(session, vm, order, config, ssh_keys=keys)
            self._grow_disk(session, config, vm.disk_gib)
            if self._state(session) != "running":
                self._power(session, "start")
            return address

        return self._call(order, run, vm=vm)

    def start(self, order: Order) -> None:
        def run(session, vm):
            if self._state(session) != "running":
                self._power(session, "start")
        self._call(order, run)

    def shutdown(self, order: Order) -> None:
        """ACPI shutdown; the guest decides. The task fails when it is still on after the timeout."""
        def run(session, vm):
            if self._state(session) == "running":
                self._power(session, "shutdown", timeout=settings.PROVISIONING_PROXMOX_SHUTDOWN_TIMEOUT)
        self._call(order, run)

    def reboot(self, order: Order) -> None:
        def run(session, vm):
            self._power(session, "reboot" if self._state(session) == "running" else "start")
        self._call(order, run)

    def power_off(self, order: Order) -> None:
        def run(session, vm):
            if self._state(session) != "stopped":
                self._power(session, "stop")
        self._call(order, run)

    def status(self, order: Order) -> str:
        return self._call(order, lambda session, vm: self._state(session))

    def suspend(self, order: Order) -> None:
        """Unpaid or staff suspension: not started at boot, shut down (powered off after the timeout)."""
        def run(session, vm):
            self._our_config(session, vm)
            session.vm.config.put(onboot=0)
            if self._state(session) == "running":
                self._power(session, "shutdown", timeout=settings.PROVISIONING_PROXMOX_SHUTDOWN_TIMEOUT, forceStop=1)
        self._call(order, run)

    def unsuspend(self, order: Order) -> None:
        def run(session, vm):
            self._our_config(session, vm)
            session.vm.config.put(onboot=1)
            if self._state(session) != "running":
                self._power(session, "start")
        self._call(order, run)

    def resize(self, order: Order, spec: MachineSpec) -> ResizeOutcome:
        """CPU and RAM through the config (PVE keeps them pending on a running VM; a reboot applies
        them), the boot disk grown through resize. A smaller disk is never applied."""
        def run(session, vm):
            config = self._our_config(session, vm)
            memory = re.search(r"\d+", str(config.get("memory", vm.memory_mib)))
            current = MachineSpec(vcpus=int(config.get("cores", 1)) * int(config.get("sockets", 1)),
                                  memory_mib=int(memory.group(0)) if memory else vm.memory_mib, disk_gib=vm.disk_gib)
            reboot = self.resize_needs_reboot(current, spec)
            running = self._state(session) == "running"
            if reboot:
                session.vm.config.put(sockets=1, cores=spec.vcpus, memory=spec.memory_mib)
            kept = None
            if not self._grow_disk(session, config, spec.disk_gib) and spec.disk_gib < vm.disk_gib:
                kept = vm.disk_gib
            if reboot and running:
                self._power(session, "reboot")
            return ResizeOutcome(rebooted=reboot and running, disk_kept_gib=kept)
        return self._call(order, run)

    def reinstall(self, order: Order, *, os_image: str, ssh_keys: list[str], instance_id: str) -> None:
        """The VM is destroyed with its disks and cloned again from the chosen template (same VMID and
        MAC address), then configured with the new password and keys and started. The install id in
        the description tells a retry whether the new clone is already there."""
        vm = self._vm(order)
        template = OsTemplate.objects.filter(node=vm.node, os_image__name=os_image, is_active=True).first()
        if template is None:
            raise NotSupported(f"Node {vm.node.name} has no template for {os_image}.")
        password = vm.initial_password or secrets.token_urlsafe(12)
        VirtualMachine.objects.filter(pk=vm.pk).update(template=template, initial_password=password)
        vm.template, vm.initial_password = template, password
        install = f"{vm.domain}-{instance_id}"

        def run(session, vm):
            config = self._config(session)
            mac = None
            if config is not None:
                self._check_ours(config, vm)
            if config is None or _marks(config).get("portal-install") != install:
                if config is not None:
                    mac = net0_mac(config)
                    if self._state(session) != "stopped":
                        self._power(session, "stop")
                    self._destroy(session)
                config = self._clone(session, vm, template, install=install)
            self._configure(session, vm, order, config, ssh_keys=ssh_keys, mac=mac)
            self._grow_disk(session, config, vm.disk_gib)
            if self._state(session) != "running":
                self._power(session, "start")
        self._call(order, run, vm=vm)

    def terminate(self, order: Order) -> None:
        """Stop and destroy the VM with its disks; a VM already gone is success."""
        vm = VirtualMachine.objects.select_related("node").filter(order=order).first()
        if vm is None:
            return  # the create never got as far as placing it

        def run(session, vm):
            config = self._config(session)
            if config is None:
                return
            self._check_ours(config, vm)
            if self._state(session) != "stopped":
                self._power(session, "stop")
            self._destroy(session)
        self._call(order, run, vm=vm)

    def console_ticket(self, order: Order) -> ConsoleTicket:
        """Opening the console only checks that the VM runs: PVE's VNC proxy waits just 10 s for its
        websocket, so it is started when the browser connects (console_stream), which also logs in."""
        def run(session, vm):
            if self._state(session) != "running":
                raise ModuleError("The server is not running.")
            url = urlsplit(vm.node.uri)
            return ConsoleTicket(host=url.hostname, port=url.port or 8006, password="", expires_in=0)
        return self._call(order, run)

    def console_stream(self, order: Order) -> socket.socket:
        """A fresh VNC proxy (POST …/vncproxy) reached as a websocket on the node's API, with the API
        token and the node's CA (both stay in the console process, never in the browser); the process
        logs in with the proxy's one-time password and hands the browser an RFB stream (vnc.py)."""
        from websockets.sync.client import connect

        def run(session, vm):
            proxy = session.vm.vncproxy.post(websocket=1, **{"generate-password": 1})
            path = (f"/api2/json/nodes/{session.node}/qemu/{session.vmid}/vncwebsocket?"
                    + urlencode({"port": proxy["port"], "vncticket": proxy["ticket"]}))
            return vm.node, path, proxy["password"]

        node, path, password = self._call(order, run)
        url = urlsplit(node.uri)
        context = ssl.create_default_context(cafile=_ca_file(node.ca_certificate) if node.ca_certificate else None)
        try:
            connection = connect(
                f"wss://{url.netloc if url.port else f'{url.netloc}:8006'}{path}", ssl=context, proxy=None,
                compression=None, subprotocols=["binary"], max_size=None,  # PVE's own noVNC asks for "binary"
                additional_headers={"Authorization": f"PVEAPIToken={node.token_id}={node.token_secret}"},
                open_timeout=settings.PROVISIONING_PROXMOX_HTTP_TIMEOUT,
                legacy=True)  # a plain connection, not a context manager: websocket_console's threads close it
        except ssl.SSLError:
            raise ModuleError(f"Node {node.name} ({node.uri}): TLS verification failed; check its CA certificate.") from None
        except Exception as error:  # noqa: BLE001 - refused, unreachable, timed out: the message names no secret
            raise ModuleError(f"Node {node.name}: the VNC websocket failed: {type(error).__name__}: {str(error)[:200]}") from None
        return websocket_console(connection, password, timeout=settings.PROVISIONING_PROXMOX_HTTP_TIMEOUT)

    def usage_sample(self, order: Order) -> UsageSample:
        """Cumulative counters like libvirt's, built from PVE's RRD averages: the previous sample plus
        each RRD point after it (rate × step; CPU: share × vCPUs × step). A VM's first sample is the
        zero base the deltas start from."""
        vm = self._vm(order)
        last = UsageRow.objects.filter(vm=vm).order_by("-taken_at").first()
        if last is None:
            return UsageSample(cpu_time_ns=0, net_rx_bytes=0, net_tx_bytes=0, disk_read_bytes=0, disk_write_bytes=0)
        now = timezone.now()
        since, until = int(last.taken_at.timestamp()), int(now.timestamp())
        timeframe = "hour" if now - last.taken_at <= timedelta(minutes=55) else "day"

        def run(session, vm):
            points = [point for point in session.vm.rrddata.get(timeframe=timeframe, cf="AVERAGE") or []
                      if point.get("time") is not None]
            points.sort(key=lambda point: point["time"])
            totals = dict.fromkeys(("cpu", "netin", "netout", "diskread", "diskwrite"), Decimal(0))
            for previous, point in zip([None, *points], points):
                if not since < point["time"] <= until:
                    continue
                step = point["time"] - previous["time"] if previous else (60 if timeframe == "hour" else 1800)
                for key in ("netin", "netout", "diskread", "diskwrite"):
                    totals[key] += Decimal(str(point.get(key) or 0)) * step
                totals["cpu"] += Decimal(str(point.get("cpu") or 0)) * Decimal(str(point.get("maxcpu") or vm.vcpus)) * step
            return UsageSample(cpu_time_ns=last.cpu_time_ns + int(totals["cpu"] * 10 ** 9),
                               net_rx_bytes=last.net_rx_bytes + int(totals["netin"]),
                               net_tx_bytes=last.net_tx_bytes + int(totals["netout"]),
                               disk_read_bytes=last.disk_read_bytes + int(totals["diskread"]),
                               disk_write_bytes=last.disk_write_bytes + int(totals["diskwrite"]))
        return self._call(order, run, vm=vm)

    def set_bandwidth(self, order: Order, mbps: int | None) -> None:
        """net0's rate (PVE applies it to the running VM at once and keeps it in the config)."""
        def run(session, vm):
            config = self._our_config(session, vm)
            session.vm.config.put(net0=net0_with(config.get("net0", ""), bridge=vm.node.bridge, mbps=mbps))
        self._call(order, run)
