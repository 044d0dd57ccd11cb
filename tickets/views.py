from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.formats import get_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import Area, acting_customer, customer_view

from . import selectors, services
from .downloads import attachment_response
from .forms import ReplyForm, TicketCreateForm, topic_initial


@require_GET
@customer_view(Area.TICKETS)
def ticket_list(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    status = request.GET.get("status", "open")
    if status not in selectors.STATUS_FILTERS:
        status = "open"
    query = request.GET.get("q", "")[:100]
    if query.strip():
        paginator = Paginator(selectors.ticket_rows_for(customer=customer, status=status, query=query),
                              settings.TICKETS_PAGE_SIZE)
    else:  # the count and the page's rows by queries compiled once
        paginator = Paginator(selectors.TicketRows(customer=customer, status=status), settings.TICKETS_PAGE_SIZE)
        paginator.count = selectors.ticket_count(customer=customer, status=status)
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "tickets/list.html", {
        "page": page, "status": status, "query": query, "status_filters": [
            ("open", _("Open")), ("closed", _("Closed")), ("all", _("All")),
        ],
        # A row's time is printed twice (title: DATETIME_FORMAT, text: SHORT_): formatted once when they agree.
        "one_time_format": get_format("DATETIME_FORMAT") == get_format("SHORT_DATETIME_FORMAT"),
    })


@customer_view(Area.TICKETS)
def ticket_create(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    departments = selectors.departments_open()
    orders = selectors.services_for_ticket(customer=customer)
    if request.method == "POST":
        form = TicketCreateForm(request.POST, request.FILES, departments=departments, orders=orders)
        if form.is_valid():
            data = form.cleaned_data
            try:
                ticket = services.ticket_create(
                    customer=customer, user=request.user, department=data["department"], subject=data["subject"],
                    priority=data["priority"], body=data["body"], files=data["attachments"],
                    related_order=data["related_order"],
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, _("Ticket #%(number)s has been opened. We will answer soon.")
                                 % {"number": ticket.number})
                return redirect("tickets:detail", ticket_id=ticket.pk)
    else:
        initial = topic_initial(request.GET.get("topic", ""), customer=customer, departments=departments)
        form = TicketCreateForm(initial=initial, departments=departments, orders=orders)
    return render(request, "tickets/create.html", {"form": form})


def _thread_context(ticket, reply_form: ReplyForm) -> dict:
    deadline = selectors.reopen_deadline(ticket)
    return {
        "ticket": ticket,
        "thread": selectors.thread_page_for_customer(ticket=ticket),
        "reply_form": reply_form,
        "reopen_deadline": deadline,
        "can_reopen": ticket.is_closed and deadline is not None and deadline >= timezone.now(),
        # For the Jinja2 body: Django's filesizeformat (Jinja's builtin of that name prints other units).
        "filesize": filesizeformat,
    }


@require_GET
@customer_view(Area.TICKETS)
def ticket_detail(request: HttpRequest, ticket_id: int) -> HttpResponse:
    ticket = selectors.ticket_get(customer=acting_customer(request), ticket_id=ticket_id)
    return render(request, "tickets/detail.html", _thread_context(ticket, ReplyForm()))


@require_POST
@customer_view(Area.TICKETS)
def ticket_reply(request: HttpRequest, ticket_id: int) -> HttpResponse:
    ticket = selectors.ticket_get(customer=acting_customer(request), ticket_id=ticket_id)
    form = ReplyForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            services.message_post_customer(
                ticket=ticket, user=request.user, body=form.cleaned_data["body"], files=form.cleaned_data["attachments"]
            )
        except ValidationError as error:  # e.g. closed meanwhile: the page shows no reply form then
            messages.error(request, error.messages[0])
        else:
            messages.success(request, _("Your reply has been sent."))
        return redirect("tickets:detail", ticket_id=ticket.pk)
    return render(request, "tickets/detail.html", _thread_context(ticket, form), status=400)


@require_POST
@customer_view(Area.TICKETS)
def ticket_close(request: HttpRequest, ticket_id: int) -> HttpResponse:
    ticket = selectors.ticket_get(customer=acting_customer(request), ticket_id=ticket_id)
    services.ticket_close(ticket=ticket, user=request.user)
    messages.success(request, _("The ticket is closed. You can reopen it within %(days)d days.")
                     % {"days": settings.TICKETS_REOPEN_DAYS})
    return redirect("tickets:detail", ticket_id=ticket.pk)


@require_POST
@customer_view(Area.TICKETS)
def ticket_reopen(request: HttpRequest, ticket_id: int) -> HttpResponse:
    ticket = selectors.ticket_get(customer=acting_customer(request), ticket_id=ticket_id)
    try:
        services.ticket_reopen(ticket=ticket, user=request.user)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, _("The ticket is open again. Write what you need below."))
    return redirect("tickets:detail", ticket_id=ticket.pk)


@require_POST
@customer_view(Area.TICKETS)
def ticket_seen(request: HttpRequest, ticket_id: int) -> HttpResponse:
    """Called by the thread page once loaded (htmx): the customer has now seen the staff replies."""
    ticket = selectors.ticket_get(customer=acting_customer(request), ticket_id=ticket_id)
    services.ticket_mark_read(ticket=ticket)
    return HttpResponse(status=204)


@require_GET
@customer_view(Area.TICKETS)
def attachment_download(request: HttpRequest, attachment_id: int) -> HttpResponse:
    attachment = selectors.attachment_get_for_customer(customer=acting_customer(request), attachment_id=attachment_id)
    return attachment_response(attachment)
