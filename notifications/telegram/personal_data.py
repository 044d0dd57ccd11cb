"""Telegram's part of "export my data" and of anonymizing an account (accounts.personal_data)."""
from accounts.models import Customer

from .models import TelegramLink
from .services import customer_telegram_erase


def export_telegram(customer: Customer) -> list[dict]:
    return [{
        "login": link.user.username, "chat_id": link.chat_id, "telegram_username": link.telegram_username,
        "telegram_name": link.telegram_name, "notification_kinds": ", ".join(link.kinds), "linked_at": link.linked_at,
    } for link in TelegramLink.objects.filter(customer=customer).select_related("user").order_by("pk")]


def erase_telegram(customer: Customer, actor) -> None:
    customer_telegram_erase(customer=customer)


def register() -> None:
    from accounts.personal_data import register_erasure_handler, register_exporter

    register_exporter("telegram", export_telegram)
    register_erasure_handler(erase_telegram)
