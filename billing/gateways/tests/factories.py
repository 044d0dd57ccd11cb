import factory

from billing.gateways.models import GatewayConfig, SavedPaymentMethod


class GatewayConfigFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GatewayConfig
        django_get_or_create = ("code",)

    code = "sandbox"
    enabled = True


class SavedPaymentMethodFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SavedPaymentMethod

    gateway = "sandbox"
    token = factory.Sequence(lambda n: f"card_test{n}")
    brand = "visa"
    last4 = "4242"
    exp_month = 12
    exp_year = 2030
