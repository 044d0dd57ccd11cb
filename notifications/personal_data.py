"""The inbox's part of "export my data" (accounts.personal_data)."""
from accounts.models import Customer

from .selectors import inbox_for


def export_notifications(customer: Customer) -> list[dict]:
    return [{
        "date": notification.created_at, "kind": notification.kind, "subject": notification.subject,
        "text": notification.body_text, "link": notification.link, "read_at": notification.read_at,
    } for notification in inbox_for(customer).defer(None).order_by("created_at", "pk")]


def register() -> None:
    from accounts.personal_data import register_exporter

    register_exporter("notifications", export_notifications)
