"""Writes for tickets: opening, replies from either side, status flow, assignment, auto-close.

Every function locks the ticket row, so a customer reply and a staff reply arriving together apply
one after the other and the status always reflects the newest message.
"""
import functools
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.text import Truncator
from django.utils.translation import gettext as _, ngettext

from accounts.models import Customer, User
from accounts.services.activity import activity_record
from core.topbar import topbar_changed
from notifications.kinds import Kind
from notifications.services import email_enqueue, notify
from orders.models import Order

from .models import Attachment, Department, Message, Ticket
from .selectors import reopen_deadline
from .uploads import CheckedUpload

# Namespace for pg_advisory_xact_lock(namespace, customer_id): serialises ticket creation per customer.
TICKET_CREATE_LOCK = 8_001
Status = Ticket.Status


def _lock_ticket(ticket: Ticket) -> Ticket:
    return Ticket.objects.select_for_update(of=("self",)).select_related("department", "customer").get(pk=ticket.pk)


def _save_attachments(*, message: Message, files: Sequence[CheckedUpload]) -> None:
    """Store the files under random names, then their rows; on failure remove what was written."""
    stored: list[Attachment] = []
    try:
        for checked in files:
            attachment = Attachment(
                message=message, original_name=checked.name, content_type=checked.content_type, size=checked.size,
            )
            attachment.file.save(checked.name, checked.file, save=False)
            stored.append(attachment)
            attachment.save()
    except Exception:
        for attachment in stored:
            attachment.file.delete(save=False)
        raise


def _thread_link(ticket: Ticket) -> str:
    return reverse("tickets:detail", args=[ticket.pk])


def _staff_email(*, ticket: Ticket, message: Message | None, event: str) -> None:
    """Email the department address about a customer's message (or reopen) through the outbox."""
    with translation.override(settings.LANGUAGE_CODE):
        context = {
            "ticket": ticket,
            "message": message,
            "event": event,
            "customer": ticket.customer,
            "admin_url": settings.PORTAL_BASE_URL + reverse("admin:tickets_ticket_change", args=[ticket.pk]),
        }
        subject = render_to_string("tickets/email/staff_subject.txt", context).strip()
        body = render_to_string("tickets/email/staff_message.txt", context)
    key = f"ticket:{ticket.pk}:message:{message.pk}:staff" if message else f"ticket:{ticket.pk}:{event}:{timezone.now():%Y%m%d%H%M%S%f}"
    email_enqueue(to=ticket.department.email, subject=subject, body_text=body, dedupe_key=key,
                  customer=ticket.customer)


def _set_last_reply(ticket: Ticket, message: Message) -> None:
    ticket.last_reply_at = message.created_at
    ticket.last_reply_by = message.author
    ticket.last_reply_is_staff = message.is_staff


def _set_status(ticket: Ticket, status: str, now: datetime) -> None:
    if ticket.status != status:
        ticket.status = status
        ticket.status_changed_at = now
    ticket.closed_at = now if status == Status.CLOSED else None


@transaction.atomic
def ticket_create(
    *,
    customer: Customer,
    user: User,
    department: Department,
    subject: str,
    priority: str,
    body: str,
    files: Sequence[CheckedUpload] = (),
    related_order: Order | None = None,
) -> Ticket:
    """Open a ticket with its first message; refuses beyond TICKETS_NEW_PER_HOUR per customer."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [TICKET_CREATE_LOCK, customer.pk])
    now = timezone.now()
    limit = settings.TICKETS_NEW_PER_HOUR
    recent = Ticket.objects.filter(customer=customer, created_at__gte=now - timedelta(hours=1)).count()
    if recent >= limit:
        raise ValidationError(
            ngettext(
                "You can open at most %(limit)d ticket per hour. Please add to an existing ticket or try again later.",
                "You can open at most %(limit)d tickets per hour. Please add to an existing ticket or try again later.",
                limit,
            ) % {"limit": limit},
            code="rate_limited",
        )
    if not department.is_active:
        raise ValidationError(_("This department does not accept new tickets."), code="inactive_department")
    if related_order is not None and related_order.customer_id != customer.pk:
        raise ValidationError(_("Choose one of your own services."), code="foreign_order")
    ticket = Ticket(
        customer=customer, subject=subject, department=department, priority=priority, status=Status.OPEN,
        created_by=user, last_reply_at=now, last_reply_by=user, status_changed_at=now, awaiting_staff_since=now,
        related_order=related_order,
    )
    ticket.full_clean()
    ticket.save()
    message = Message.objects.create(ticket=ticket, author=user, is_staff=False, body=body)
    _save_attachments(message=message, files=files)
    _set_last_reply(ticket, message)
    ticket.save(update_fields=["last_reply_at", "last_reply_by", "last_reply_is_staff"])
    _staff_email(ticket=ticket, message=message, event="created")
    return ticket


@transaction.atomic
def message_post_customer(*, ticket: Ticket, user: User, body: str, files: Sequence[CheckedUpload] = ()) -> Message:
    """A customer's reply: the ticket now awaits staff; the department is emailed."""
    ticket = _lock_ticket(ticket)
    if ticket.is_closed:
        raise ValidationError(_("This ticket is closed. Reopen it to write again."), code="closed")
    now = timezone.now()
    message = Message.objects.create(ticket=ticket, author=user, is_staff=False, body=body)
    _save_attachments(message=message, files=files)
    _set_last_reply(ticket, message)
    # Before any staff answer the ticket stays "open"; after one it becomes "customer replied".
    if ticket.status == Status.ANSWERED:
        _set_status(ticket, Status.CUSTOMER_REPLIED, now)
    ticket.awaiting_staff_since = ticket.awaiting_staff_since or now
    ticket.autoclose_warned_at = None
    ticket.save()
    _staff_email(ticket=ticket, message=message, event="reply")
    return message


@transaction.atomic
def message_post_staff(
    *, ticket: Ticket, staff_user: User, body: str, is_internal: bool = False, files: Sequence[CheckedUpload] = ()
) -> Message:
    """A staff reply (ticket → answered, customer notified) or an internal note (nothing else changes)."""
    if not staff_user.is_staff:
        raise ValidationError(_("Only staff can post staff replies."), code="not_staff")
    ticket = _lock_ticket(ticket)
    message = Message.objects.create(
        ticket=ticket, author=staff_user, is_staff=True, is_internal=is_internal, body=body
    )
    _save_attachments(message=message, files=files)
    if is_internal:
        return message
    now = timezone.now()
    _set_last_reply(ticket, message)
    _set_status(ticket, Status.ANSWERED, now)
    ticket.awaiting_staff_since = None
    ticket.autoclose_warned_at = None
    ticket.customer_unread = True
    if ticket.assigned_to_id is None:
        ticket.assigned_to = staff_user
    ticket.save()
    topbar_changed([ticket.customer_id])  # the unread tickets count
    _notify_customer_reply(ticket=ticket, message=message)
    return message


def _notice_context(ticket: Ticket) -> dict:
    """What every ticket notice carries: `ticket_id` (Telegram's reply reference) and `category` (which
    of the customer's addresses it goes to)."""
    return {"ticket_id": ticket.number, "ticket_subject": ticket.subject, "category": ticket.department.category}


def _notify_customer_reply(*, ticket: Ticket, message: Message) -> None:
    notify(
        customer=ticket.customer,
        kind=Kind.TICKET_REPLY,
        context={
            **_notice_context(ticket),
            "author": message.author.first_name if message.author else "",
            "excerpt": Truncator(message.body).chars(500),
        },
        link=_thread_link(ticket),
        dedupe_key=f"ticket-message:{message.pk}",
    )


@transaction.atomic
def ticket_close(*, ticket: Ticket, user: User | None) -> Ticket:
    """Close a ticket (customer, staff, or None for the auto-close job). Closing twice is a no-op."""
    ticket = _lock_ticket(ticket)
    if ticket.is_closed:
        return ticket
    _set_status(ticket, Status.CLOSED, timezone.now())
    ticket.awaiting_staff_since = None
    ticket.save()
    if user is not None and user.is_staff:
        activity_record(action="ticket.closed", customer=ticket.customer, actor=user,
                        details={"ticket": ticket.pk}, visible_to_customer=False)
    return ticket


@transaction.atomic
def ticket_reopen(*, ticket: Ticket, user: User) -> Ticket:
    """Reopen a closed ticket; customers may do so for TICKETS_REOPEN_DAYS after it closed."""
    ticket = _lock_ticket(ticket)
    if not ticket.is_closed:
        return ticket
    now = timezone.now()
    if not user.is_staff and now > reopen_deadline(ticket):
        raise ValidationError(
            _("This ticket was closed more than %(days)d days ago. Please open a new ticket.")
            % {"days": settings.TICKETS_REOPEN_DAYS},
            code="reopen_expired",
        )
    answered_before = ticket.messages.filter(is_staff=True, is_internal=False).exists()
    _set_status(ticket, Status.CUSTOMER_REPLIED if answered_before else Status.OPEN, now)
    ticket.awaiting_staff_since = now
    ticket.autoclose_warned_at = None
    ticket.save()
    if not user.is_staff:
        _staff_email(ticket=ticket, message=None, event="reopened")
    return ticket


@transaction.atomic
def ticket_mark_read(*, ticket: Ticket) -> None:
    """The customer has seen the staff replies (clears the unread marker)."""
    if Ticket.objects.filter(pk=ticket.pk, customer_unread=True).update(customer_unread=False):
        topbar_changed([ticket.customer_id])


@transaction.atomic
def ticket_staff_update(
    *, ticket: Ticket, actor: User, department: Department, priority: str, assigned_to: User | None
) -> Ticket:
    """Staff edits from the admin: only these fields, so a concurrent reply's status is never overwritten."""
    locked = _lock_ticket(ticket)
    changes = {}
    for field, value in (("department", department), ("priority", priority), ("assigned_to", assigned_to)):
        old = getattr(locked, f"{field}_id") if field != "priority" else locked.priority
        new = value.pk if hasattr(value, "pk") else value
        if old != new:
            changes[field] = [str(old) if old is not None else None, str(new) if new is not None else None]
            setattr(locked, field, value)
    if changes:
        locked.save(update_fields=list(changes))
        activity_record(action="ticket.updated", customer=locked.customer, actor=actor,
                        details={"ticket": locked.pk, "changes": changes}, visible_to_customer=False)
    return locked


def autoclose_warning_due(now: datetime) -> datetime:
    return now - timedelta(days=settings.TICKETS_AUTOCLOSE_DAYS - settings.TICKETS_AUTOCLOSE_WARNING_DAYS)


@transaction.atomic
def ticket_autoclose_process(*, ticket_id: int, now: datetime | None = None) -> str:
    """Warn, then close, an "answered" ticket the customer has left alone.

    Returns "warned", "closed" or "" (nothing due). The warning always comes first and at least
    TICKETS_AUTOCLOSE_WARNING_DAYS before closing, even if the job did not run for a while; running
    it again the same day changes nothing.
    """
    now = now or timezone.now()
    ticket = (
        Ticket.objects.select_for_update(skip_locked=True, of=("self",)).select_related("department", "customer")
        .filter(pk=ticket_id, status=Status.ANSWERED).first()
    )
    if ticket is None:
        return ""
    warning_period = timedelta(days=settings.TICKETS_AUTOCLOSE_WARNING_DAYS)
    if ticket.autoclose_warned_at is None:
        if ticket.status_changed_at > autoclose_warning_due(now):
            return ""
        closes_on = max(ticket.status_changed_at + timedelta(days=settings.TICKETS_AUTOCLOSE_DAYS), now + warning_period)
        with translation.override(ticket.customer.language):
            closes_at_text = formats.date_format(timezone.localtime(closes_on), "DATE_FORMAT")
        ticket.autoclose_warned_at = now
        ticket.save(update_fields=["autoclose_warned_at"])
        notify(
            customer=ticket.customer,
            kind=Kind.TICKET_AUTOCLOSE_WARNING,
            context={**_notice_context(ticket), "closes_at": closes_at_text},
            link=_thread_link(ticket),
            dedupe_key=f"ticket:{ticket.pk}:autoclose-warning:{ticket.status_changed_at:%Y%m%d%H%M%S}",
        )
        return "warned"
    closes_at = max(ticket.status_changed_at + timedelta(days=settings.TICKETS_AUTOCLOSE_DAYS),
                    ticket.autoclose_warned_at + warning_period)
    if now < closes_at:
        return ""
    _set_status(ticket, Status.CLOSED, now)
    ticket.save()
    return "closed"


def tickets_autoclose_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Run auto-close over every "answered" ticket old enough to need a warning or closing."""
    now = now or timezone.now()
    ids = list(
        Ticket.objects.filter(status=Status.ANSWERED, status_changed_at__lte=autoclose_warning_due(now))
        .order_by("pk").values_list("pk", flat=True)
    )
    counts = {"warned": 0, "closed": 0}
    for ticket_id in ids:
        outcome = ticket_autoclose_process(ticket_id=ticket_id, now=now)
        if outcome:
            counts[outcome] += 1
    return counts


@transaction.atomic
def customer_tickets_erase(*, customer: Customer, actor: User | None) -> None:
    """Account erasure: close the customer's tickets and remove what they wrote.

    Subjects and the customer's messages are replaced by a note in their language, their attachments
    deleted (files after commit). Staff replies and internal notes stay: the conversation's record.
    """
    tickets = list(Ticket.objects.select_for_update().filter(customer=customer).order_by("pk"))
    for ticket in tickets:
        if not ticket.is_closed:
            ticket_close(ticket=ticket, user=actor)
    with translation.override(customer.language):
        removed = _("[removed at the customer's request]")
    Ticket.objects.filter(pk__in=[ticket.pk for ticket in tickets]).update(subject=removed)
    customer_messages = Message.objects.filter(ticket__customer=customer, is_staff=False)
    customer_messages.update(body=removed)
    attachments = Attachment.objects.filter(message__in=customer_messages)
    files = [(attachment.file.storage, attachment.file.name) for attachment in attachments if attachment.file]
    attachments.delete()
    for storage, name in files:
        transaction.on_commit(functools.partial(storage.delete, name))
