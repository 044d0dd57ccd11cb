"""Tickets' part of "export my data" and of account erasure (accounts.personal_data)."""
from accounts.models import Customer, User

from .selectors import ticket_thread_for_customer, tickets_for
from .services import customer_tickets_erase


def export_tickets(customer: Customer) -> list[dict]:
    return [{
        "number": ticket.pk, "subject": ticket.subject, "department": ticket.department.name,
        "status": ticket.status, "created_at": ticket.created_at, "closed_at": ticket.closed_at,
        "messages": [{
            "date": message.created_at, "from_staff": message.is_staff, "body": message.body,
            "attachments": [attachment.original_name for attachment in message.attachments.all()],
        } for message in ticket_thread_for_customer(ticket=ticket)],
    } for ticket in tickets_for(customer=customer, status="all").order_by("pk")]


def erase_tickets(customer: Customer, actor: User | None) -> None:
    customer_tickets_erase(customer=customer, actor=actor)


def register() -> None:
    from accounts.personal_data import register_erasure_handler, register_exporter

    register_exporter("tickets", export_tickets)
    register_erasure_handler(erase_tickets)
