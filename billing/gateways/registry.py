"""Gateways by code. Built-ins register at startup; a new provider is one `register_gateway` call."""
from .base import Gateway

_gateways: dict[str, Gateway] = {}


def register_gateway(gateway: Gateway) -> None:
    _gateways[gateway.code] = gateway


def get_gateway(code: str) -> Gateway | None:
    return _gateways.get(code)


def all_gateways() -> list[Gateway]:
    return list(_gateways.values())


def register_builtin_gateways() -> None:
    from .providers.bank_transfer import BankTransferGateway
    from .providers.sandbox import SandboxGateway
    from .providers.stripe_checkout import StripeCheckoutGateway

    for gateway in (SandboxGateway(), StripeCheckoutGateway(), BankTransferGateway()):
        register_gateway(gateway)
