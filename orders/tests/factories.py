from decimal import Decimal

import factory

from orders.models import IpAddress, IpPool, Location, OsImage, Plan, PlanPrice, ProductType


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
