"""Reads for tickets, always scoped to a customer: another customer's ids are simply not found (404)."""
from collections import namedtuple
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from accounts.models import Customer
from core.compiled import ROW_COUNT, STAND_IN, STAND_IN_2, CompiledQuery, CompiledRows

from .models import Attachment, Department, Message, Ticket

STATUS_FILTERS = ("open", "closed", "all")
MAX_TICKET_NUMBER_DIGITS = 18  # stays inside bigint


def reopen_deadline(ticket: Ticket) -> datetime | None:
    """Until when the customer may reopen a closed ticket (None while it is not closed)."""
    if not ticket.closed_at:
        return None
    return ticket.closed_at + timedelta(days=settings.TICKETS_REOPEN_DAYS)


def departments_open() -> QuerySet[Department]:
    return Department.objects.filter(is_active=True)


def services_for_ticket(*, customer: Customer):
    """The customer's services a ticket may refer to (newest first)."""
    from orders.selectors import orders_for

    return orders_for(customer).select_related("plan").order_by("-pk")


def tickets_for(*, customer: Customer, status: str = "open", query: str = "") -> QuerySet[Ticket]:
    """The customer's tickets, newest activity first; `query` matches the subject or the ticket number."""
    tickets = Ticket.objects.filter(customer=customer).select_related("department", "last_reply_by")
    if status == "open":
        tickets = tickets.exclude(status=Ticket.Status.CLOSED)
    elif status == "closed":
        tickets = tickets.filter(status=Ticket.Status.CLOSED)
    query = query.strip()
    if query:
        condition = Q(subject__icontains=query)
        number = query.lstrip("#").strip()
        if number.isdigit() and len(number) <= MAX_TICKET_NUMBER_DIGITS:
            condition |= Q(pk=int(number))
        tickets = tickets.filter(condition)
    return tickets.order_by("-last_reply_at", "-pk")


# What a row of the tickets page prints (no model instances: the page shows 20 rows of three tables).
TICKET_ROW_FIELDS = (
    "id", "subject", "customer_unread", "priority", "status", "last_reply_at", "last_reply_is_staff",
    "department__name", "last_reply_by__username", "last_reply_by__first_name", "last_reply_by__last_name",
)


TicketRow = namedtuple("TicketRow", TICKET_ROW_FIELDS)


def ticket_rows_for(*, customer: Customer, status: str = "open", query: str = ""):
    """tickets_for() as rows with TICKET_ROW_FIELDS as attributes (`last_reply_by__username` is None when
    nobody is recorded as the last replier)."""
    return tickets_for(customer=customer, status=status, query=query).values_list(*TICKET_ROW_FIELDS, named=True)


# Without a search, the list's two queries (the count, a page of rows) are compiled once per status filter.
_ROWS = {status: CompiledQuery(lambda customer_id, status=status: tickets_for(
    customer=Customer(pk=customer_id), status=status).values_list(*TICKET_ROW_FIELDS), customer_id=STAND_IN)
    for status in STATUS_FILTERS}
_COUNTS = {status: CompiledQuery(lambda customer_id, status=status: tickets_for(
    customer=Customer(pk=customer_id), status=status).order_by().annotate(n=ROW_COUNT).values_list("n"),
    customer_id=STAND_IN) for status in STATUS_FILTERS}


def ticket_count(*, customer: Customer, status: str) -> int:
    """`tickets_for(customer=customer, status=status).count()` (no search)."""
    return _COUNTS[status](customer_id=customer.pk)[0][0]


class TicketRows:
    """`ticket_rows_for(customer=customer, status=status)` (no search) for a Paginator whose count is set:
    a slice runs the compiled query and gives TicketRow tuples."""

    def __init__(self, *, customer: Customer, status: str):
        self._rows = CompiledRows(_ROWS[status], customer_id=customer.pk)

    def __getitem__(self, index):
        return [TicketRow(*row) for row in self._rows[index]]


def ticket_get(*, customer: Customer, ticket_id: int) -> Ticket:
    """The customer's ticket with its department and related service (its plan), 404 otherwise (another
    customer's ticket too). Compiled once (core.compiled): building it cost the ORM ~0.5 ms on every thread page."""
    found = _TICKET_GET(customer_id=customer.pk, ticket_id=int(ticket_id))
    if not found:
        raise Http404("No Ticket matches the given query.")
    return found[0]


_TICKET_GET = CompiledQuery(lambda customer_id, ticket_id: Ticket.objects.select_related(
    "department", "related_order__plan").filter(customer_id=customer_id, pk=ticket_id).order_by(),
    customer_id=STAND_IN, ticket_id=STAND_IN_2)


def ticket_thread_for_customer(*, ticket: Ticket) -> QuerySet[Message]:
    """Messages the customer may see (never internal notes), oldest first, attachments prefetched."""
    return (
        ticket.messages.filter(is_internal=False)
        .select_related("author")
        .prefetch_related(Prefetch("attachments", queryset=Attachment.objects.order_by("pk")))
        .order_by("created_at", "pk")
    )


class ThreadAttachment(NamedTuple):
    pk: int
    original_name: str
    size: int


class ThreadMessage:
    """A message of the customer's thread page, with what the page prints (no model instances).
    `author_name`: None when the author's user is gone (SET_NULL); else a staff author's first name, a
    customer author's full name or, without one, the username (as User.get_full_name() or username)."""
    __slots__ = ("pk", "is_staff", "body", "created_at", "author_name", "attachments")

    def __init__(self, pk, is_staff, body, created_at, author_username, author_first_name, author_last_name):
        self.pk, self.is_staff, self.body, self.created_at = pk, is_staff, body, created_at
        if author_username is None:
            self.author_name = None
        elif is_staff:
            self.author_name = author_first_name
        else:
            self.author_name = f"{author_first_name} {author_last_name}".strip() or author_username
        self.attachments: list[ThreadAttachment] = []


def _thread_page_rows(ticket_id: int):
    return (
        Message.objects.filter(ticket_id=ticket_id, is_internal=False)
        .order_by("created_at", "pk", "attachments__id")
        .values_list("id", "is_staff", "body", "created_at", "author__username", "author__first_name",
                     "author__last_name", "attachments__id", "attachments__original_name", "attachments__size")
    )


_THREAD_PAGE_ROWS = CompiledQuery(_thread_page_rows, ticket_id=STAND_IN)  # the ORM built it in ~0.4 ms per view


def thread_page_for_customer(*, ticket: Ticket) -> list[ThreadMessage]:
    """ticket_thread_for_customer() for the thread page in one query (compiled once per process): the messages
    joined with their authors and attachments (a row per attachment), the same order (oldest first,
    attachments by pk)."""
    thread: list[ThreadMessage] = []
    message = None
    for *fields, attachment_id, name, size in _THREAD_PAGE_ROWS(ticket_id=ticket.pk):
        if message is None or message.pk != fields[0]:
            message = ThreadMessage(*fields)
            thread.append(message)
        if attachment_id is not None:
            message.attachments.append(ThreadAttachment(attachment_id, name, size))
    return thread


def ticket_thread_for_staff(*, ticket: Ticket) -> QuerySet[Message]:
    return (
        ticket.messages.select_related("author")
        .prefetch_related(Prefetch("attachments", queryset=Attachment.objects.order_by("pk")))
        .order_by("created_at", "pk")
    )


def attachment_get_for_customer(*, customer: Customer, attachment_id: int) -> Attachment:
    return get_object_or_404(
        Attachment.objects.select_related("message"),
        pk=attachment_id, message__ticket__customer=customer, message__is_internal=False,
    )


def unread_ticket_count(*, customer: Customer) -> int:
    return Ticket.objects.filter(customer=customer, customer_unread=True).count()


def tickets_nav(request, customer: Customer) -> dict | None:
    """Top-bar data for the Tickets nav item: None hides it (role without tickets), else the unread count."""
    from accounts.roles import Area, role_allows

    if not role_allows(request.user, Area.TICKETS):
        return None
    return {"unread": unread_ticket_count(customer=customer)}
