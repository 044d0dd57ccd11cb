from decimal import Decimal

import factory

from orders.models import IpAddress, IpPool, Location, OsImage, Plan, PlanAddon, PlanAddonPrice, PlanPrice, ProductType


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Location
        django_get_or_create = ("code",)

    code = "ams"
    name = "Amsterdam"


class ProductTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductType
        django_get_or_create = ("code",)

    code = "vps"
    name = "VPS/VDS"
    provisioner = ProductType.Provisioner.IP_POOL
    order_fields = ["hostname", "os_image", "location"]


class IpPoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IpPool
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"pool-{n}")

    @factory.post_generation
    def size(pool, create, extracted, **kwargs):
        if create and extracted:
            n = pool.pk
            IpAddress.objects.bulk_create(
                IpAddress(pool=pool, address=f"10.{n % 256}.{i // 250}.{i % 250 + 1}") for i in range(extracted)
            )


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        skip_postgeneration_save = True

    product_type = factory.SubFactory(ProductTypeFactory)
    code = factory.Sequence(lambda n: f"plan-{n}")
    name = factory.Sequence(lambda n: f"VPS {n}")
    cpu_cores = 2
    ram_gb = 4
    disk_gb = 80
    traffic_tb = Decimal("10")
    ip_pool = factory.SubFactory(IpPoolFactory, size=20)

    @factory.post_generation
    def prices(plan, create, extracted, **kwargs):
        """prices={(months, currency): amount}; default 10 EUR a month with period discounts."""
        if not create:
            return
        table = extracted or {(1, "EUR"): "10.00", (3, "EUR"): "28.00", (6, "EUR"): "54.00", (12, "EUR"): "100.00"}
        PlanPrice.objects.bulk_create(
            PlanPrice(plan=plan, period_months=months, currency=currency, amount=Decimal(amount))
            for (months, currency), amount in table.items()
        )
        plan.locations.add(LocationFactory())
        if not plan.product_type.os_images.exists():
            image = OsImage.objects.create(name="Ubuntu 24.04")
            image.product_types.add(plan.product_type)


def order_options(plan: Plan) -> dict:
    return {"hostname": "web1.example.com", "os_image": "Ubuntu 24.04", "location": "Amsterdam"}


def make_addon(plan: Plan, kind: str, name: str, *, step: int = 1, max_quantity: int = 1, prices: dict | None = None,
               **fields) -> PlanAddon:
    """A plan add-on priced per step: prices={(months, currency): amount}, default {(1, "EUR"): "1.00"}."""
    addon = PlanAddon.objects.create(plan=plan, kind=kind, name=name, step=step, max_quantity=max_quantity, **fields)
    PlanAddonPrice.objects.bulk_create(
        PlanAddonPrice(addon=addon, period_months=months, currency=currency, amount=Decimal(amount))
        for (months, currency), amount in (prices or {(1, "EUR"): "1.00"}).items()
    )
    return addon


def standard_addons(plan: Plan) -> dict[str, PlanAddon]:
    """The add-ons most tests use, a month's price of one step in EUR:
    RAM 2 GB a step (max 4) 3.00, vCPU 1 a step (max 4) 5.00, disk 10 GB a step (max 5) 1.00,
    IPv4 1 a step (max 3) 2.50, backups 4.00, control panel licence 7.00."""
    return {
        "ram": make_addon(plan, "ram", "Extra RAM", name_ru="Дополнительная память", step=2, max_quantity=4,
                          prices={(1, "EUR"): "3.00", (3, "EUR"): "8.40"}, sort_order=1),
        "cpu": make_addon(plan, "cpu", "Extra vCPU", step=1, max_quantity=4, prices={(1, "EUR"): "5.00"}, sort_order=2),
        "disk": make_addon(plan, "disk", "Extra disk", step=10, max_quantity=5, prices={(1, "EUR"): "1.00"}, sort_order=3),
        "ipv4": make_addon(plan, "ipv4", "Extra IPv4", step=1, max_quantity=3, prices={(1, "EUR"): "2.50"}, sort_order=4),
        "backups": make_addon(plan, "backups", "Backups", prices={(1, "EUR"): "4.00"}, sort_order=5),
        "panel": make_addon(plan, "control_panel", "ISPmanager licence", prices={(1, "EUR"): "7.00"}, sort_order=6),
    }
