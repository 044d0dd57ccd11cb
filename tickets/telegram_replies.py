"""A reply written in Telegram to the bot's "ticket:<number>" message becomes a customer message.

Registered with notifications.telegram in TicketsConfig.ready(); goes through message_post_customer,
so the status flow and the department email happen exactly as for a reply in the portal.
"""
from accounts.models import Customer
from accounts.roles import Area, role_allows

from .models import Ticket
from .services import message_post_customer

MAX_BODY_CHARS = 20_000  # as the portal's reply form


def ticket_reply_from_telegram(customer: Customer, telegram_message, reply_to_reference: str) -> bool:
    prefix, _sep, number = reply_to_reference.partition(":")
    if prefix != "ticket" or not number.isdigit():
        return False
    user = telegram_message.user
    if not user.is_active or user.customer_id != customer.pk or not role_allows(user, Area.TICKETS):
        return False
    ticket = Ticket.objects.filter(customer=customer, pk=int(number)).first()
    if ticket is None:
        return False
    message_post_customer(ticket=ticket, user=user, body=telegram_message.text[:MAX_BODY_CHARS])
    return True
