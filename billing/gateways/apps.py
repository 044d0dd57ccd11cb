from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GatewaysConfig(AppConfig):
    name = "billing.gateways"
    label = "billing_gateways"
    verbose_name = _("Payment gateways")

    def ready(self) -> None:
        from billing.hooks import register_payment_method

        from .registry import all_gateways, register_builtin_gateways

        register_builtin_gateways()
        for gateway in all_gateways():
            register_payment_method(gateway.code, gateway.name)
