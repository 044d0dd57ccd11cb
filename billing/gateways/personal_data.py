"""Saved payment methods in "export my data", and removed (detached at the provider) on account erasure."""
from accounts.models import Customer, User

from .selectors import payment_methods_for
from .services import method_remove


def export_payment_methods(customer: Customer) -> list[dict]:
    return [{
        "gateway": method.gateway, "type": method.kind, "brand": method.brand, "last4": method.last4,
        "expires": f"{method.exp_month:02d}/{method.exp_year}" if method.exp_month and method.exp_year else "",
        "default": method.is_default, "saved_at": method.created_at,
    } for method in payment_methods_for(customer)]


def remove_payment_methods(customer: Customer, actor: User | None) -> None:
    # Before anonymizing: nothing may be charged to the closed account afterwards (auto-payment goes too).
    for method in list(payment_methods_for(customer)):
        method_remove(method=method, actor=actor)


def register() -> None:
    from accounts.personal_data import Stage, register_erasure_handler, register_exporter

    register_exporter("payment_methods", export_payment_methods)
    register_erasure_handler(remove_payment_methods, stage=Stage.END_SERVICES)
