"""The inbox's part of "export my data" and of account erasure (accounts.personal_data)."""
from accounts.models import Customer, User

from .selectors import inbox_for
from .services import customer_notifications_erase


def export_notifications(customer: Customer) -> list[dict]:
    return [{
        "date": notification.created_at, "kind": notification.kind, "subject": notification.subject,
        "text": notification.body_text, "link": notification.link, "read_at": notification.read_at,
    } for notification in inbox_for(customer, user=None).defer(None).order_by("created_at", "pk")]


def erase_notifications(customer: Customer, actor: User | None) -> None:
    customer_notifications_erase(customer=customer)


def register() -> None:
    from accounts.personal_data import register_erasure_handler, register_exporter

    register_exporter("notifications", export_notifications)
    register_erasure_handler(erase_notifications)
