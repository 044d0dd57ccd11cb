"""Demo catalogue (VPS and dedicated plans priced in the enabled currencies), an IP pool, and two
active orders for the demo customer bought through the real services (paid from the balance).

With DEMO_PROVISIONING=auto (what `make run` sets) the VPS plans use the libvirt module on a demo node
at qemu:///system, when libvirt can run here; otherwise they stay on the IP-pool module (addresses
assigned at once, no VM). It says which it chose.
"""
import os
from decimal import Decimal

from .models import IpAddress, IpPool, Location, OsImage, Plan, PlanPrice, ProductType

# (code, name, cpu, ram, disk, traffic TB, EUR per 1/3/6/12 months, setup fee, stock)
VPS_PLANS = [
    ("vps-start", "VPS Start", 1, 2, 40, Decimal("2"), ("6.00", "17.00", "33.00", "62.00"), "0", None),
    ("vps-standard", "VPS Standard", 2, 4, 80, Decimal("4"), ("12.00", "34.00", "66.00", "124.00"), "0", None),
    ("vps-pro", "VPS Pro", 4, 8, 160, Decimal("8"), ("24.00", "68.00", "132.00", "250.00"), "0", None),
]
DEDICATED_PLANS = [
    ("ded-e3", "Dedicated E-2388G", 8, 32, 960, None, ("89.00", "255.00", "499.00", "960.00"), "49.00", 5),
    ("ded-epyc", "Dedicated EPYC 7443P", 24, 128, 3840, None, ("229.00", "660.00", "1290.00", "2490.00"), "99.00", 2),
]
# Round prices staff set per currency; the rest (e.g. JPY) are converted from EUR at the current rate.
FIXED_PRICES = {"USD": Decimal("1.10"), "RUB": Decimal("95")}


def _plans(product_type, rows, locations, pool):
    for position, (code, name, cpu, ram, disk, traffic, eur, setup, stock) in enumerate(rows):
        plan, created = Plan.objects.get_or_create(code=code, defaults={
            "product_type": product_type, "name": name, "cpu_cores": cpu, "ram_gb": ram, "disk_gb": disk,
            "disk_type": "NVMe" if product_type.code == "vps" else "2× NVMe RAID1", "traffic_tb": traffic,
            "port_mbps": 1000 if product_type.code == "vps" else 10000, "setup_fee": Decimal(setup), "stock": stock,
            "ip_pool": pool, "sort_order": position,
            "cpu_model": "" if product_type.code == "vps" else name.split(" ", 1)[1],
        })
        if not created:
            continue
        plan.locations.set(locations)
        for months, amount in zip((1, 3, 6, 12), eur):
            PlanPrice.objects.create(plan=plan, period_months=months, currency="EUR", amount=Decimal(amount))
            for currency, factor in FIXED_PRICES.items():
                PlanPrice.objects.create(plan=plan, period_months=months, currency=currency,
                                         amount=(Decimal(amount) * factor).quantize(Decimal("1")))


def seed(*, customer, owner, stdout) -> None:
    from .services import placing

    ams, _ = Location.objects.get_or_create(code="ams", defaults={"name": "Amsterdam"})
    fra, _ = Location.objects.get_or_create(code="fra", defaults={"name": "Frankfurt"})
    vps, _ = ProductType.objects.get_or_create(code="vps", defaults={
        "name": "VPS/VDS", "provisioner": ProductType.Provisioner.IP_POOL, "sort_order": 0,
        "order_fields": ["hostname", "os_image", "location", "ssh_key"],
        "description": "KVM virtual servers on NVMe storage, ready in a minute.",
        "description_ru": "Виртуальные серверы KVM на NVMe-дисках, готовы за минуту."})
    dedicated, _ = ProductType.objects.get_or_create(code="dedicated", defaults={
        "name": "Dedicated servers", "name_ru": "Выделенные серверы", "provisioner": ProductType.Provisioner.MANUAL,
        "sort_order": 1,
        "order_fields": ["hostname", "os_image", "location"],
        "description": "Bare-metal servers set up by our engineers within one business day."})
    for position, name in enumerate(["Ubuntu 24.04 LTS", "Debian 12", "AlmaLinux 9", "Windows Server 2022"]):
        image, _ = OsImage.objects.get_or_create(name=name, defaults={"sort_order": position})
        image.product_types.add(vps, dedicated)
    pool, created = IpPool.objects.get_or_create(name="AMS-1 public", defaults={"location": ams})
    if created:
        IpAddress.objects.bulk_create(IpAddress(pool=pool, address=f"185.12.40.{n}") for n in range(10, 42))
    _plans(vps, VPS_PLANS, [ams, fra], pool)
    _plans(dedicated, DEDICATED_PLANS, [ams], None)

    provisioning_demo(vps, stdout)

    options = {"hostname": "web1.demo.example", "os_image": "Ubuntu 24.04 LTS", "location": "Amsterdam"}
    for key, code, months in (("demo:order:1", "vps-standard", 1), ("demo:order:2", "vps-start", 3)):
        placed = placing.order_place(customer=customer, actor=owner, plan=Plan.objects.get(code=code),
                                     period_months=months, options=options, idempotency_key=key)
        options = {**options, "hostname": "db1.demo.example", "os_image": "Debian 12"}
        if not placed.paid:
            stdout.write(f"  orders: order #{placed.order.pk} left unpaid (demo balance too low)")
    stdout.write("  orders: VPS and dedicated catalogue, IP pool AMS-1 (32 addresses), two orders (active, or being set up on the demo node)")


DEMO_NODE, DEMO_POOL, DEMO_URI = "demo-local", "hostportal-demo", "qemu:///system"
DEMO_TEMPLATE_MIB = 64  # blank qcow2 "OS images": the VMs run but boot nothing (no downloads here)


def provisioning_demo(vps, stdout) -> None:
    from .models import HypervisorNode, OsTemplate

    mode = os.environ.get("DEMO_PROVISIONING", "off")
    if mode == "off":
        return
    try:
        _libvirt_demo_storage()
    except Exception as error:  # no libvirt, daemon down, no permission: the demo still runs
        stdout.write(f"  provisioning: IP-pool module (libvirt cannot run here: {error})")
        return
    node, _ = HypervisorNode.objects.get_or_create(name=DEMO_NODE, defaults={
        "uri": DEMO_URI, "cpu_capacity": 32, "ram_capacity_mib": 2048, "disk_capacity_gib": 2000,
        "storage_pool": DEMO_POOL, "network": "default"})
    for image in OsImage.objects.filter(product_types=vps):
        volume = "template-" + "".join(c if c.isalnum() else "-" for c in image.name.lower()) + ".qcow2"
        _libvirt_demo_template(volume)
        OsTemplate.objects.get_or_create(node=node, os_image=image, defaults={"volume": volume})
    Plan.objects.filter(product_type=vps).update(module="libvirt", module_settings={"memory_mib": 128, "vcpus": 1})
    stdout.write(f"  provisioning: libvirt module, demo node {DEMO_NODE} on {DEMO_URI} (128 MiB VMs on blank disks)")


def _libvirt_demo_storage() -> None:
    import libvirt

    conn = libvirt.open(DEMO_URI)
    try:
        try:
            pool = conn.storagePoolLookupByName(DEMO_POOL)
        except libvirt.libvirtError:
            pool = conn.storagePoolDefineXML(f"<pool type='dir'><name>{DEMO_POOL}</name><target>"
                                             f"<path>/var/lib/libvirt/images/{DEMO_POOL}</path></target></pool>")
            pool.build(0)
        if not pool.isActive():
            pool.create()
        pool.setAutostart(1)
        network = conn.networkLookupByName("default")
        if not network.isActive():
            network.create()
    finally:
        conn.close()


def _libvirt_demo_template(volume: str) -> None:
    import libvirt

    conn = libvirt.open(DEMO_URI)
    try:
        pool = conn.storagePoolLookupByName(DEMO_POOL)
        if volume not in pool.listVolumes():
            pool.createXML(f"<volume><name>{volume}</name><capacity unit='MiB'>{DEMO_TEMPLATE_MIB}</capacity>"
                           f"<target><format type='qcow2'/></target></volume>", 0)
    finally:
        conn.close()
