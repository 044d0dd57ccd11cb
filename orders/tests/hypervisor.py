"""Fixtures for tests against the machine's real libvirt/QEMU (`qemu:///system`): a directory storage
pool named after the test database with two small blank qcow2 templates, the `default` network, and
clean-up of every domain and volume a test made. Tests using them skip, saying why, when libvirt
cannot run here; `make test` / `.ci/run` install and start it (Makefile target `libvirt`)."""
import xml.etree.ElementTree as ET

import pytest
from django.conf import settings

from orders.models import HypervisorNode, OsImage, OsTemplate, ProductType

from .factories import PlanFactory

URI = "qemu:///system"
TEMPLATE_MIB = 16


def _connect():
    try:
        import libvirt
    except ImportError:
        pytest.skip("libvirt-python is not installed (make test installs it)")
    try:
        return libvirt, libvirt.open(URI)
    except libvirt.libvirtError as error:
        pytest.skip(f"libvirtd is not reachable at {URI}: {error.get_error_message()} (make test starts it)")


@pytest.fixture(scope="session")
def hypervisor():
    """(libvirt module, connection, pool name) with templates tmpl-a/tmpl-b present."""
    libvirt, conn = _connect()
    name = settings.PROVISIONING_LIBVIRT_PREFIX
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        path = f"/var/lib/libvirt/images/{name}"
        pool = conn.storagePoolDefineXML(f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>")
        pool.build(0)
    if not pool.isActive():
        pool.create()
    pool.refresh(0)
    for template in ("tmpl-a.qcow2", "tmpl-b.qcow2"):
        if template not in pool.listVolumes():
            pool.createXML(f"<volume><name>{template}</name><capacity unit='MiB'>{TEMPLATE_MIB}</capacity>"
                           f"<target><format type='qcow2'/></target></volume>", 0)
    network = conn.networkLookupByName("default")
    if not network.isActive():
        network.create()
    yield libvirt, conn, name
    conn.close()


def _cleanup(libvirt, conn, pool_name):
    prefix = settings.PROVISIONING_LIBVIRT_PREFIX + "-order-"
    for dom in conn.listAllDomains(0):
        if dom.name().startswith(prefix):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    pool = conn.storagePoolLookupByName(pool_name)
    pool.refresh(0)
    for volume in pool.listAllVolumes(0):
        if volume.name().startswith(prefix):
            volume.delete(0)


@pytest.fixture
def kvm(hypervisor):
    """Per test: a clean hypervisor before and after."""
    libvirt, conn, pool_name = hypervisor
    _cleanup(libvirt, conn, pool_name)
    yield hypervisor
    _cleanup(libvirt, conn, pool_name)


@pytest.fixture
def kvm_node(kvm):
    _libvirt, _conn, pool_name = kvm
    node = HypervisorNode.objects.create(name="kvm-test", uri=URI, cpu_capacity=8, ram_capacity_mib=4096,
                                         disk_capacity_gib=100, storage_pool=pool_name, network="default")
    return node


@pytest.fixture
def kvm_plan(kvm_node):
    """A tiny libvirt plan (64 MiB, 1 vCPU, 1 GiB) whose OS images have templates on the node."""
    product_type, _ = ProductType.objects.get_or_create(code="kvm", defaults={
        "name": "KVM", "provisioner": ProductType.Provisioner.LIBVIRT, "order_fields": ["hostname", "os_image", "ssh_key"]})
    plan = PlanFactory(product_type=product_type, code="kvm-tiny", name="KVM Tiny", cpu_cores=1, ram_gb=1, disk_gb=1,
                       module_settings={"memory_mib": 64})
    image_a = product_type.os_images.get()
    image_b = OsImage.objects.create(name="Debian 12")
    image_b.product_types.add(product_type)
    OsTemplate.objects.create(node=kvm_node, os_image=image_a, volume="tmpl-a.qcow2")
    OsTemplate.objects.create(node=kvm_node, os_image=image_b, volume="tmpl-b.qcow2")
    return plan


def kvm_options(plan) -> dict:
    return {"hostname": "vm1.example.com", "os_image": plan.product_type.os_images.order_by("pk").first().name,
            "ssh_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKexampleexampleexampleexampleexample test@example"}


def domain_xml(conn, name):
    return ET.fromstring(conn.lookupByName(name).XMLDesc(0))


def disk_backing(conn, name) -> str:
    """The template file behind the domain's disk, read from the volume (not from our database)."""
    root = domain_xml(conn, name)
    path = root.find("devices/disk[@device='disk']/source").get("file")
    volume = conn.storageVolLookupByPath(path)
    return ET.fromstring(volume.XMLDesc(0)).findtext("backingStore/path")


def volume_names(conn, pool_name) -> set[str]:
    pool = conn.storagePoolLookupByName(pool_name)
    pool.refresh(0)
    return {v for v in pool.listVolumes() if v.startswith(settings.PROVISIONING_LIBVIRT_PREFIX)}
