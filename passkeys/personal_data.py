"""Passkeys in "export my data" (names and dates only) and in erasure (deleted)."""
from accounts.models import Customer

from .models import Passkey


def export_passkeys(customer: Customer) -> list[dict]:
    return [{"login": p.user.username, "name": p.name, "created_at": p.created_at, "last_used_at": p.last_used_at}
            for p in Passkey.objects.filter(user__customer=customer).select_related("user").order_by("pk")]


def erase_passkeys(customer: Customer, actor) -> None:
    Passkey.objects.filter(user__customer=customer).delete()


def register() -> None:
    from accounts.personal_data import register_erasure_handler, register_exporter

    register_exporter("passkeys", export_passkeys)
    register_erasure_handler(erase_passkeys)
