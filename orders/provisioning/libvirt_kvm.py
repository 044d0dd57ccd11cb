"""libvirt: VMs on staff-defined KVM nodes (`HypervisorNode`, kind libvirt), driven through the
libvirt API, so a remote node (qemu+ssh://…) works exactly like the local one. Placement and the VM
row are shared with the Proxmox VE module (nodes.py).

- Disks: a qcow2 overlay on the OS template's volume, both in the node's storage pool; the
  cloud-init NoCloud seed ISO is uploaded into the same pool through a libvirt stream.
- Every operation reconciles: it looks at the domain first and succeeds when it is already in the
  wanted state (created, running, stopped, gone).
- Bandwidth (traffic quota): the interface's inbound/outbound average through
  `setInterfaceParameters` (tc on the host), on the live domain and its persistent definition.
"""
from __future__ import annotations

import secrets
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from django.conf import settings

from orders.models import HypervisorNode, IpAddress, Order, OsTemplate, VirtualMachine

from . import cloudinit
from .base import ConsoleTicket, MachineSpec, ModuleError, NotSupported, Operation, ResizeOutcome, UsageSample
from .nodes import NodeModule, vm_mark

METADATA_NS = "https://hostportal.invalid/xmlns/provisioning/1"
GIB = 1024 ** 3


def _libvirt():
    try:
        import libvirt
    except ImportError as error:  # the Debian package libvirt-dev is needed to build libvirt-python
        raise ModuleError("libvirt-python is not installed on the portal host.") from error
    return libvirt


def connect(node: HypervisorNode):
    libvirt = _libvirt()
    try:
        return libvirt.open(node.uri)
    except libvirt.libvirtError as error:
        raise ModuleError(f"Cannot connect to node {node.name} ({node.uri}): {error.get_error_message()}") from None


def node_health(node: HypervisorNode) -> tuple[bool, str]:
    """Connect, read the host and the storage pool; (ok, message) for the admin's health check."""
    libvirt = _libvirt()
    try:
        conn = connect(node)
    except ModuleError as error:
        return False, str(error)
    try:
        _model, memory_mib, cpus, *_rest = conn.getInfo()
        pool = conn.storagePoolLookupByName(node.storage_pool)
        _state, capacity, _allocation, available = pool.info()
        if node.network and not node.bridge:
            conn.networkLookupByName(node.network)
        return True, (f"{cpus} CPUs, {memory_mib} MiB RAM; pool {node.storage_pool}: {available // GIB} of "
                      f"{capacity // GIB} GiB free; {conn.numOfDomains()} domain(s) running")
    except libvirt.libvirtError as error:
        return False, error.get_error_message()
    finally:
        conn.close()


class LibvirtModule(NodeModule):
    code = "libvirt"
    name = "libvirt / KVM"
    node_kind = HypervisorNode.Kind.LIBVIRT
    operations = frozenset(Operation)

    def node_health(self, node: HypervisorNode) -> tuple[bool, str]:
        return node_health(node)

    # --- hypervisor helpers -------------------------------------------------------------------------------
    @staticmethod
    def _lookup(conn, name: str):
        libvirt = _libvirt()
        try:
            return conn.lookupByName(name)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    @staticmethod
    def _volume(pool, name: str):
        libvirt = _libvirt()
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return None
            raise

    def _pool(self, conn, node: HypervisorNode):
        pool = conn.storagePoolLookupByName(node.storage_pool)
        if not pool.isActive():
            pool.create()
        return pool

    def _disk(self, pool, vm: VirtualMachine, *, replace: bool = False):
        """The VM's qcow2 overlay on its template (kept if it exists, unless `replace`)."""
        name = f"{vm.domain}.qcow2"
        existing = self._volume(pool, name)
        if existing is not None and not replace:
            return existing
        if existing is not None:
            existing.delete(0)
        backing = self._volume(pool, vm.template.volume) if vm.template else None
        if backing is None:
            raise ModuleError(f"Template volume {vm.template.volume if vm.template else '?'} is missing from the pool.")
        xml = (f"<volume><name>{name}</name><capacity unit='bytes'>{max(vm.disk_gib * GIB, backing.info()[1])}</capacity>"
               f"<target><format type='qcow2'/></target><backingStore><path>{backing.path()}</path>"
               f"<format type='qcow2'/></backingStore></volume>")
        return pool.createXML(xml, 0)

    def _seed(self, conn, pool, vm: VirtualMachine, order: Order, *, instance_id: str, ssh_keys: list[str] | None = None):
        """(Re)write the cloud-init seed volume; returns its path."""
        address = IpAddress.objects.select_related("pool").filter(order=order).first()
        options = order.options or {}
        config = cloudinit.SeedConfig(
            instance_id=instance_id, hostname=options.get("hostname") or vm.domain,
            root_password=vm.initial_password or secrets.token_urlsafe(12),
            ssh_keys=ssh_keys if ssh_keys is not None else [k for k in [options.get("ssh_key", "")] if k],
            ip=address.address if address else None,
            prefix_length=address.pool.prefix_length if address else 24,
            gateway=address.pool.gateway if address else None,
            nameservers=address.pool.nameservers.split() if address else [])
        data = cloudinit.seed_iso(config)
        name = f"{vm.domain}-seed.iso"
        old = self._volume(pool, name)
        if old is not None:
            old.delete(0)
        volume = pool.createXML(f"<volume><name>{name}</name><capacity unit='bytes'>{len(data)}</capacity>"
                                f"<target><format type='raw'/></target></volume>", 0)
        stream = conn.newStream(0)
        volume.upload(stream, 0, len(data), 0)
        view = memoryview(data)
        sent = 0
        while sent < len(data):
            sent += stream.send(view[sent:sent + 262144].tobytes())
        stream.finish()
        return volume.path()

    @staticmethod
    def _domain_type(conn) -> str:
        return "kvm" if "<domain type='kvm'" in conn.getCapabilities() else "qemu"

    def _domain_xml(self, conn, vm: VirtualMachine, order: Order, disk_path: str, seed_path: str) -> str:
        node = vm.node
        if node.bridge:
            nic = f"<interface type='bridge'><source bridge='{node.bridge}'/><model type='virtio'/></interface>"
        else:
            nic = f"<interface type='network'><source network='{node.network}'/><model type='virtio'/></interface>"
        domain = ET.Element("domain", type=self._domain_type(conn))
        ET.SubElement(domain, "name").text = vm.domain
        ET.SubElement(domain, "description").text = f"order {order.pk}"
        metadata = ET.SubElement(domain, "metadata")
        ET.SubElement(metadata, "{%s}order" % METADATA_NS, id=str(order.pk), vm=vm_mark(vm))
        ET.SubElement(domain, "memory", unit="MiB").text = str(vm.memory_mib)
        ET.SubElement(domain, "currentMemory", unit="MiB").text = str(vm.memory_mib)
        ET.SubElement(domain, "vcpu", placement="static").text = str(vm.vcpus)
        os_element = ET.SubElement(domain, "os")
        ET.SubElement(os_element, "type", arch="x86_64", machine="pc").text = "hvm"
        ET.SubElement(os_element, "boot", dev="hd")
        features = ET.SubElement(domain, "features")
        ET.SubElement(features, "acpi")
        ET.SubElement(features, "apic")
        ET.SubElement(domain, "on_poweroff").text = "destroy"
        ET.SubElement(domain, "on_reboot").text = "restart"
        ET.SubElement(domain, "on_crash").text = "restart"
        devices = ET.SubElement(domain, "devices")
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="qcow2")
        ET.SubElement(disk, "source", file=disk_path)
        ET.SubElement(disk, "target", dev="vda", bus="virtio")
        cdrom = ET.SubElement(devices, "disk", type="file", device="cdrom")
        ET.SubElement(cdrom, "driver", name="qemu", type="raw")
        ET.SubElement(cdrom, "source", file=seed_path)
        ET.SubElement(cdrom, "target", dev="sda", bus="sata")
        ET.SubElement(cdrom, "readonly")
        devices.append(ET.fromstring(nic))
        ET.SubElement(devices, "serial", type="pty")
        ET.SubElement(devices, "console", type="pty")
        # A random VNC password nobody keeps: the console is locked until a ticket sets a new one (and
        # QEMU only accepts new passwords on a VNC server started with one).
        ET.SubElement(devices, "graphics", type="vnc", port="-1", autoport="yes", listen="127.0.0.1",
                      passwd=secrets.token_urlsafe(6)[:8])
        ET.register_namespace("portal", METADATA_NS)
        return ET.tostring(domain, encoding="unicode")

    @staticmethod
    def _check_ours(dom, vm: VirtualMachine) -> None:
        libvirt = _libvirt()
        try:
            element = ET.fromstring(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0))
            mark = element.get("vm")
        except libvirt.libvirtError:
            mark = None
        if mark != vm_mark(vm):
            raise NotSupported(f"Domain {vm.domain} on node {vm.node.name} belongs to another VM record ({mark or 'no portal mark'}); "
                               f"not adopting it. Remove it or change PROVISIONING_LIBVIRT_PREFIX.")

    def _stop(self, dom, *, graceful: bool) -> None:
        """Shut the domain off: ACPI first when `graceful`, then power off after the timeout."""
        if not dom.isActive():
            return
        if graceful:
            try:
                dom.shutdown()
            except _libvirt().libvirtError:
                pass
            deadline = time.monotonic() + settings.PROVISIONING_LIBVIRT_SHUTDOWN_TIMEOUT
            while dom.isActive() and time.monotonic() < deadline:
                time.sleep(0.25)
        if dom.isActive():
            dom.destroy()

    def _call(self, order: Order, action):
        """Open the VM's node, run `action(conn, vm)` translating libvirt errors, close."""
        libvirt = _libvirt()
        vm = self._vm(order)
        conn = connect(vm.node)
        try:
            return action(conn, vm)
        except libvirt.libvirtError as error:
            raise ModuleError(f"Node {vm.node.name}: {error.get_error_message()}") from None
        finally:
            conn.close()

    def _domain(self, conn, vm: VirtualMachine):
        dom = self._lookup(conn, vm.domain)
        if dom is None:
            raise ModuleError(f"Domain {vm.domain} does not exist on node {vm.node.name}.")
        return dom

    # --- operations -----------------------------------------------------------------------------------
    def create(self, order: Order) -> str:
        vm = self._machine(order)
        address = IpAddress.objects.filter(order=order).values_list("address", flat=True).first()

        def run(conn, vm):
            dom = self._lookup(conn, vm.domain)
            if dom is None:
                pool = self._pool(conn, vm.node)
                disk = self._disk(pool, vm)
                seed = self._seed(conn, pool, vm, order, instance_id=vm.domain)
                try:
                    dom = conn.defineXML(self._domain_xml(conn, vm, order, disk.path(), seed))
                except _libvirt().libvirtError:
                    dom = self._lookup(conn, vm.domain)  # defined meanwhile by a twin; use it
                    if dom is None:
                        raise
            else:
                self._check_ours(dom, vm)
            if not dom.isActive():
                dom.create()
            dom.setAutostart(1)
            return address

        return self._call(order, run)

    def start(self, order: Order) -> None:
        def run(conn, vm):
            dom = self._domain(conn, vm)
            if not dom.isActive():
                dom.create()
        self._call(order, run)

    def shutdown(self, order: Order) -> None:
        """ACPI shutdown request; the guest decides (status shows when it is off)."""
        def run(conn, vm):
            dom = self._domain(conn, vm)
            if dom.isActive():
                dom.shutdown()
        self._call(order, run)

    def reboot(self, order: Order) -> None:
        def run(conn, vm):
            dom = self._domain(conn, vm)
            if dom.isActive():
                dom.reboot(0)
            else:
                dom.create()
        self._call(order, run)

    def power_off(self, order: Order) -> None:
        self._call(order, lambda conn, vm: self._stop(self._domain(conn, vm), graceful=False))

    def status(self, order: Order) -> str:
        libvirt = _libvirt()

        def run(conn, vm):
            dom = self._lookup(conn, vm.domain)
            if dom is None:
                return "missing"
            state = dom.state()[0]
            if state == libvirt.VIR_DOMAIN_RUNNING:
                return "running"
            if state == libvirt.VIR_DOMAIN_PAUSED:
                return "paused"
            return "stopped"
        return self._call(order, run)

    def suspend(self, order: Order) -> None:
        """Unpaid or staff suspension: really stopped (graceful, then powered off), and not autostarted."""
        def run(conn, vm):
            dom = self._domain(conn, vm)
            dom.setAutostart(0)
            self._stop(dom, graceful=True)
        self._call(order, run)

    def unsuspend(self, order: Order) -> None:
        def run(conn, vm):
            dom = self._domain(conn, vm)
            dom.setAutostart(1)
            if not dom.isActive():
                dom.create()
        self._call(order, run)

    def resize(self, order: Order, spec: MachineSpec) -> ResizeOutcome:
        """Persistent vCPU/RAM (a restart applies them when they change) and disk growth (live when
        running). A smaller disk is never applied: data would be lost."""
        libvirt = _libvirt()

        def run(conn, vm):
            dom = self._domain(conn, vm)
            root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            current = MachineSpec(vcpus=int(root.findtext("vcpu")), memory_mib=_memory_mib(root.find("memory")),
                                  disk_gib=vm.disk_gib)
            reboot = self.resize_needs_reboot(current, spec)
            was_running = bool(dom.isActive())
            if reboot:
                root.find("vcpu").text = str(spec.vcpus)
                for tag in ("memory", "currentMemory"):
                    element = root.find(tag)
                    element.set("unit", "MiB")
                    element.text = str(spec.memory_mib)
                if was_running:
                    self._stop(dom, graceful=True)
                dom = conn.defineXML(ET.tostring(root, encoding="unicode"))
            pool = self._pool(conn, vm.node)
            disk = self._volume(pool, f"{vm.domain}.qcow2")
            kept = None
            if spec.disk_gib * GIB > disk.info()[1]:
                if dom.isActive():
                    dom.blockResize("vda", spec.disk_gib * GIB, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
                else:
                    disk.resize(spec.disk_gib * GIB, 0)
            elif spec.disk_gib < vm.disk_gib:
                kept = vm.disk_gib
            if reboot and was_running:
                dom.create()
            return ResizeOutcome(rebooted=reboot and was_running, disk_kept_gib=kept)
        return self._call(order, run)

    def reinstall(self, order: Order, *, os_image: str, ssh_keys: list[str], instance_id: str) -> None:
        """A fresh overlay on the chosen OS template (the old disk is deleted), a new seed with the VM
        row's password (set by the caller before queueing) and a new instance id, then boot."""
        vm = self._vm(order)
        template = OsTemplate.objects.filter(node=vm.node, os_image__name=os_image, is_active=True).first()
        if template is None:
            raise NotSupported(f"Node {vm.node.name} has no template for {os_image}.")
        # The new system's root password, shown to the customer once; kept across retries of this job.
        password = vm.initial_password or secrets.token_urlsafe(12)
        VirtualMachine.objects.filter(pk=vm.pk).update(template=template, initial_password=password)

        def run(conn, vm):
            dom = self._domain(conn, vm)
            self._stop(dom, graceful=False)
            pool = self._pool(conn, vm.node)
            self._disk(pool, vm, replace=True)
            self._seed(conn, pool, vm, order, instance_id=f"{vm.domain}-{instance_id}", ssh_keys=ssh_keys)
            dom.create()
        self._call(order, run)

    def terminate(self, order: Order) -> None:
        """Destroy and undefine the domain and delete its disk and seed; nothing there is success."""
        libvirt = _libvirt()
        vm = VirtualMachine.objects.select_related("node").filter(order=order).first()
        if vm is None:
            return  # the create never got as far as placing it

        def run(conn, vm):
            dom = self._lookup(conn, vm.domain)
            if dom is not None:
                self._stop(dom, graceful=False)
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                                  | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            pool = self._pool(conn, vm.node)
            for name in (f"{vm.domain}.qcow2", f"{vm.domain}-seed.iso"):
                volume = self._volume(pool, name)
                if volume is not None:
                    volume.delete(0)
        self._call(order, run)

    def console_ticket(self, order: Order) -> ConsoleTicket:
        """A VNC password valid for a minute, set on the running domain's graphics device."""
        libvirt = _libvirt()

        def run(conn, vm):
            dom = self._domain(conn, vm)
            if not dom.isActive():
                raise ModuleError("The server is not running.")
            graphics = ET.fromstring(dom.XMLDesc(0)).find("devices/graphics[@type='vnc']")
            password = secrets.token_urlsafe(6)[:8]  # VNC uses at most 8 characters
            graphics.set("passwd", password)
            graphics.set("passwdValidTo", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 60)))
            dom.updateDeviceFlags(ET.tostring(graphics, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
            host = urlsplit(vm.node.uri).hostname or "127.0.0.1"
            return ConsoleTicket(host=host, port=int(graphics.get("port")), password=password, expires_in=60)
        return self._call(order, run)

    def usage_sample(self, order: Order) -> UsageSample:
        def run(conn, vm):
            dom = self._domain(conn, vm)
            root = ET.fromstring(dom.XMLDesc(0))
            cpu_time = dom.info()[4]
            rx = tx = 0
            if dom.isActive():
                for target in root.findall("devices/interface/target"):
                    stats = dom.interfaceStats(target.get("dev"))
                    rx, tx = rx + stats[0], tx + stats[4]
                block = dom.blockStats("vda")
                read, written = block[1], block[3]
            else:
                read = written = 0
            return UsageSample(cpu_time_ns=cpu_time, net_rx_bytes=rx, net_tx_bytes=tx, disk_read_bytes=read,
                               disk_write_bytes=written)
        return self._call(order, run)


    def set_bandwidth(self, order: Order, mbps: int | None) -> None:
        """Every interface's inbound and outbound average, in libvirt's unit of kilobytes (1000 bytes)
        per second: N Mbit/s = 125·N. 0 removes the limit. Applied to the persistent definition (it
        survives a restart, a resize and a reinstall) and to the running domain at once."""
        libvirt = _libvirt()
        average = mbps * 125 if mbps else 0
        parameters = {"inbound.average": average, "outbound.average": average}

        def run(conn, vm):
            dom = self._domain(conn, vm)
            # One definition per call: the running domain first (tc on the host can refuse), then the
            # persistent one, so a failure leaves neither changed and the retry does both.
            targets = ([libvirt.VIR_DOMAIN_AFFECT_LIVE] if dom.isActive() else []) + [libvirt.VIR_DOMAIN_AFFECT_CONFIG]
            for mac in ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).findall("devices/interface/mac"):
                for flags in targets:
                    dom.setInterfaceParameters(mac.get("address"), parameters, flags)
        self._call(order, run)


def _memory_mib(element) -> int:
    units = {"KiB": 1 / 1024, "k": 1 / 1024, "MiB": 1, "M": 1, "GiB": 1024, "G": 1024, "b": 1 / 1024 ** 2, "bytes": 1 / 1024 ** 2}
    return int(int(element.text) * units.get(element.get("unit", "KiB"), 1 / 1024))
