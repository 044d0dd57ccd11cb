"""Demo: the sandbox gateway for every demo currency, bank transfer and Stripe switched on (each is
offered only once its settings/keys exist), and a sandbox card saved for the demo customer."""
from django.conf import settings

from . import services
from .base import MethodDetails
from .models import GatewayConfig, SandboxCard


def seed(*, customer, owner, stdout) -> None:
    for position, code in enumerate(["sandbox", "stripe", "bank_transfer"]):
        GatewayConfig.objects.get_or_create(code=code, defaults={"enabled": True, "position": position,
                                                                 "currencies": list(settings.CURRENCIES)})
    card = SandboxCard.objects.create(id=f"card_demo{customer.pk}", customer_ref=str(customer.pk), brand="visa",
                                      last4="4242", exp_month=12, exp_year=2030, behaviour="succeed")
    services.method_save(customer=customer, gateway_code="sandbox", details=MethodDetails(
        token=card.pk, brand=card.brand, last4=card.last4, exp_month=card.exp_month, exp_year=card.exp_year))
    stdout.write("  gateways: sandbox/Stripe/bank transfer enabled, a saved sandbox Visa •••• 4242")
