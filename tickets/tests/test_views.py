"""Customer pages and the staff admin: list (fixed query count), thread, escaping, downloads, admin reply."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.tests.factories import UserFactory
from core.compiled import prepared_sql
from tickets import services
from tickets.models import Attachment, Message, Ticket
from tickets.tests.factories import PDF_BYTES, TicketFactory, department, upload
from tickets.uploads import check_upload

pytestmark = pytest.mark.django_db
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def make_tickets(owner, count):
    tickets = [TicketFactory.build(created_by=owner, customer=owner.customer, last_reply_by=owner)
               for _ in range(count)]
    Ticket.objects.bulk_create(tickets)
    return tickets


def list_queries(client, **params) -> tuple[int, int]:
    """(all queries, queries on ticket tables) for one list page."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("tickets:list"), params)
    assert response.status_code == 200
    return len(queries), sum('"tickets_' in prepared_sql(query["sql"]) for query in queries.captured_queries)


def test_list_query_count_does_not_grow_with_tickets(owner, owner_client, staff):
    make_tickets(owner, 10)
    services.message_post_staff(ticket=Ticket.objects.first(), staff_user=staff, body="answer")
    small = list_queries(owner_client)
    make_tickets(owner, 290)
    for ticket in Ticket.objects.filter(customer=owner.customer)[:30]:
        Ticket.objects.filter(pk=ticket.pk).update(last_reply_by=staff, last_reply_is_staff=True, customer_unread=True)
    assert list_queries(owner_client) == small
    assert list_queries(owner_client, page=3, status="all") == small
    assert small[1] == 3  # nav unread badge, paginator count, the page itself (department, replier joined)


def test_list_shows_columns_unread_marker_and_last_replier(owner, owner_client, staff):
    ticket = TicketFactory(created_by=owner, subject="Kernel panic", priority="urgent")
    services.message_post_staff(ticket=ticket, staff_user=staff, body="Looking")
    body = owner_client.get(reverse("tickets:list")).content.decode()
    row = body[body.index(f'data-testid="ticket-row-{ticket.pk}"'):]
    row = row[:row.index("</tr>")]
    for text in ("Kernel panic", f"#{ticket.number}", "Technical support", "Urgent", "Answered", "Maria (support)",
                 'data-testid="unread-marker"'):
        assert text in row
    assert 'data-testid="nav-tickets-unread">1<' in body


def test_filter_search_and_pagination(owner, owner_client, settings):
    settings.TICKETS_PAGE_SIZE = 2
    open_a = TicketFactory(created_by=owner, subject="Backup failed")
    TicketFactory(created_by=owner, subject="DNS question")
    closed = TicketFactory(created_by=owner, subject="Old backup issue")
    services.ticket_close(ticket=closed, user=owner)

    def subjects(**params):
        page = owner_client.get(reverse("tickets:list"), params).context["page"]
        return {t.subject for t in page.object_list}, page.paginator.count

    assert subjects() == ({"Backup failed", "DNS question"}, 2)
    assert subjects(status="closed") == ({"Old backup issue"}, 1)
    assert subjects(status="all", q="backup") == ({"Backup failed", "Old backup issue"}, 2)
    assert subjects(status="all", q=f"#{open_a.number}") == ({"Backup failed"}, 1)
    assert subjects(status="all", q="9" * 40)[1] == 0  # huge numbers do not overflow
    assert subjects(status="bogus")[1] == 2  # unknown filter falls back to open
    assert subjects(status="all", page=2)[1] == 3
    empty = owner_client.get(reverse("tickets:list"), {"q": "nothing like this"}).content.decode()
    assert "No tickets match" in empty


def test_html_in_subject_and_message_is_escaped_and_urls_linked(owner, owner_client):
    ticket = services.ticket_create(
        customer=owner.customer, user=owner, department=department(), priority="normal", subject=XSS,
        body=f"{XSS}\nsecond line https://status.example.com/?a=1&b=2",
    )
    for url in (reverse("tickets:list"), reverse("tickets:detail", args=[ticket.pk])):
        html = owner_client.get(url).content.decode()
        assert "<script>window.__pwned" not in html and "<img src=x" not in html
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "<br>second line" in html
    assert 'href="https://status.example.com/?a=1&amp;b=2"' in html


def test_create_form_and_change_country_topic(owner, owner_client):
    html = owner_client.get(reverse("tickets:create")).content.decode()
    assert 'multiple' in html and 'enctype="multipart/form-data"' in html
    response = owner_client.get(reverse("tickets:create"), {"topic": "change-country"})
    form = response.context["form"]
    assert form.initial["department"] == department("billing")
    assert form.initial["subject"] == "Change of country"
    assert "Current country: Germany" in form.initial["body"]


def test_create_posts_a_ticket_and_redirects_to_the_thread(owner_client, owner):
    response = owner_client.post(reverse("tickets:create"), {
        "department": department("billing").pk, "subject": "  Refund  ", "priority": "high",
        "body": "Please refund invoice 12", "attachments": [upload("invoice.pdf", PDF_BYTES, "application/pdf")],
    })
    ticket = Ticket.objects.get()
    assert response["Location"] == reverse("tickets:detail", args=[ticket.pk])
    assert (ticket.subject, ticket.priority, ticket.department.slug, ticket.created_by) == ("Refund", "high", "billing", owner)
    assert ticket.messages.get().attachments.get().original_name == "invoice.pdf"


@pytest.mark.parametrize("data, error", [
    ({"subject": "", "body": "x"}, "This field is required"),
    ({"subject": "x" * 201, "body": "x"}, "at most 200 characters"),
    ({"subject": "Hi", "body": "   "}, "This field is required"),
    ({"subject": "Hi", "body": "x", "priority": "critical"}, "Select a valid choice"),
])
def test_create_rejects_bad_input(owner_client, data, error):
    payload = {"department": department().pk, "priority": "normal", **data}
    response = owner_client.post(reverse("tickets:create"), payload)
    assert error in response.content.decode()
    assert not Ticket.objects.exists()


def test_thread_reply_close_reopen_and_seen(owner, owner_client, staff):
    ticket = TicketFactory(created_by=owner)
    services.message_post_staff(ticket=ticket, staff_user=staff, body="Answer from staff")
    response = owner_client.get(reverse("tickets:detail", args=[ticket.pk]))
    bodies = [m.body for m in response.context["thread"]]
    assert bodies == ["It does not work.", "Answer from staff"]  # oldest first
    assert 'hx-post="%s"' % reverse("tickets:seen", args=[ticket.pk]) in response.content.decode()
    assert Ticket.objects.get(pk=ticket.pk).customer_unread is True  # viewing alone changes nothing
    assert owner_client.post(reverse("tickets:seen", args=[ticket.pk])).status_code == 204
    assert Ticket.objects.get(pk=ticket.pk).customer_unread is False

    owner_client.post(reverse("tickets:reply", args=[ticket.pk]), {"body": "Thanks!"})
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.CUSTOMER_REPLIED
    owner_client.post(reverse("tickets:close", args=[ticket.pk]))
    html = owner_client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert 'data-testid="reopen-ticket"' in html and 'data-testid="reply-form"' not in html
    owner_client.post(reverse("tickets:reopen", args=[ticket.pk]))
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.CUSTOMER_REPLIED


def test_attachment_download_is_a_safe_attachment(owner, owner_client, staff):
    ticket = TicketFactory(created_by=owner)
    message = services.message_post_customer(
        ticket=ticket, user=owner, body="log", files=[check_upload(upload("boot.log", b"<html><script>x</script>", "text/html"))]
    )
    attachment = message.attachments.get()
    response = owner_client.get(reverse("tickets:attachment", args=[attachment.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"  # never text/html, whatever the browser sent
    assert response["Content-Disposition"] == 'attachment; filename="boot.log"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == b"<html><script>x</script>"
    # A trusted technical user of the same customer may download; staff download through the admin.
    from django.test import Client

    technical = Client()
    technical.force_login(UserFactory(customer=owner.customer, role="technical"))
    assert technical.get(reverse("tickets:attachment", args=[attachment.pk])).status_code == 200
    staff_client = Client()
    staff_client.force_login(staff)
    admin_download = staff_client.get(reverse("admin:tickets_ticket_attachment", args=[attachment.pk]))
    assert admin_download.status_code == 200 and admin_download["Content-Disposition"].startswith("attachment")
    assert staff_client.get(reverse("tickets:attachment", args=[attachment.pk])).status_code == 403


def test_admin_queue_filters_and_waiting_column(admin_client, owner):
    TicketFactory(created_by=owner, subject="Waiting one", priority="urgent")
    TicketFactory(created_by=owner, subject="Billing one", department=department("billing"))
    response = admin_client.get(reverse("admin:tickets_ticket_changelist"), {"department__id__exact": department("billing").pk})
    html = response.content.decode()
    assert "Billing one" in html and "Waiting one" not in html
    html = admin_client.get(reverse("admin:tickets_ticket_changelist"), {"priority__exact": "urgent", "status__exact": "open"}).content.decode()
    assert "Waiting one" in html and "Billing one" not in html
    assert "column-waiting_column" in html


def test_admin_reply_internal_note_and_assignment(client, owner, staff):
    client.force_login(staff)
    ticket = TicketFactory(created_by=owner)
    change_url = reverse("admin:tickets_ticket_change", args=[ticket.pk])
    page = client.get(change_url).content.decode()
    assert "It does not work." in page and 'id="staff-reply-form"' in page

    reply_url = reverse("admin:tickets_ticket_reply", args=[ticket.pk])
    response = client.post(reply_url, {"body": "Checked the <b>logs</b>", "is_internal": "on"})
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN and not ticket.customer_unread
    assert client.get(change_url).content.decode().count("Internal note") >= 1

    response = client.post(reply_url, {"body": "Fixed it", "attachments": [upload("after.png")]})
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.ANSWERED and ticket.customer_unread and ticket.assigned_to == staff
    assert Message.objects.filter(ticket=ticket, is_staff=True, is_internal=False).get().attachments.count() == 1

    # An invalid reply re-renders the page with the error and keeps the text.
    response = client.post(reply_url, {"body": "with a virus", "attachments": [upload("x.png", b"MZ\x00\x00")]})
    assert response.status_code == 200 and "executable program" in response.content.decode()
    assert "with a virus" in response.content.decode()
    assert Attachment.objects.count() == 1

    other_staff = type(staff).objects.create(username="second", email="s2@portal.local", is_staff=True, is_superuser=True)
    response = client.post(change_url, {"department": department("billing").pk, "priority": "high",
                                        "assigned_to": other_staff.pk, "_save": "Save"})
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert (ticket.department.slug, ticket.priority, ticket.assigned_to, ticket.status) == (
        "billing", "high", other_staff, Ticket.Status.ANSWERED)


def make_order(customer):
    from decimal import Decimal

    from orders.models import Order
    from orders.tests.factories import PlanFactory

    return Order.objects.create(customer=customer, plan=PlanFactory(name="VPS Start"), period_months=1,
                                price=Decimal("10.00"), currency="EUR")


def test_related_service_is_limited_to_the_customers_orders(owner, owner_client):
    mine = make_order(owner.customer)
    theirs = make_order(UserFactory().customer)
    form = owner_client.get(reverse("tickets:create")).context["form"]
    assert list(form.fields["related_order"].queryset) == [mine]
    assert f"#{mine.pk} · VPS Start · Pending" in form.as_p()

    data = {"department": department().pk, "subject": "Slow disk", "priority": "normal", "body": "iowait 90%"}
    response = owner_client.post(reverse("tickets:create"), {**data, "related_order": theirs.pk})
    assert "Select a valid choice" in response.content.decode() and not Ticket.objects.exists()
    owner_client.post(reverse("tickets:create"), {**data, "related_order": mine.pk})
    ticket = Ticket.objects.get()
    assert ticket.related_order == mine
    assert "VPS Start" in owner_client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    with pytest.raises(Exception, match="own services"):
        services.ticket_create(customer=owner.customer, user=owner, department=department(), subject="x",
                               priority="normal", body="x", related_order=theirs)


def test_pages_are_translated_to_russian(owner, owner_client):
    owner.customer.language = "ru"
    owner.customer.save()
    owner_client.cookies["django_language"] = "ru"
    TicketFactory(created_by=owner, department=department("abuse"))
    html = owner_client.get(reverse("tickets:list")).content.decode()
    for text in ("Тикеты", "Новый тикет", "Абьюз-отдел", "Открыт", "Последний ответ"):
        assert text in html
    html = owner_client.get(reverse("tickets:create"), {"topic": "change-country"}).content.decode()
    assert "Смена страны" in html and "Текущая страна: Германия" in html


def test_reply_to_a_closed_ticket_is_refused_with_a_message(owner, owner_client):
    ticket = TicketFactory(created_by=owner)
    services.ticket_close(ticket=ticket, user=owner)
    response = owner_client.post(reverse("tickets:reply", args=[ticket.pk]), {"body": "late"}, follow=True)
    assert "This ticket is closed. Reopen it to write again." in response.content.decode()
    assert not ticket.messages.filter(body="late").exists()


def test_thread_lists_each_messages_attachments_in_order_with_one_thread_query(owner, owner_client, staff):
    ticket = TicketFactory(created_by=owner)
    services.message_post_customer(ticket=ticket, user=owner, body="two files", files=[
        check_upload(upload("a.log", b"first", "text/plain")), check_upload(upload("b.log", b"second!", "text/plain"))])
    services.message_post_staff(ticket=ticket, staff_user=staff, body="no files")
    services.message_post_customer(ticket=ticket, user=owner, body="one file",
                                   files=[check_upload(upload("c.log", b"third", "text/plain"))])
    with CaptureQueriesContext(connection) as queries:
        response = owner_client.get(reverse("tickets:detail", args=[ticket.pk]))
    body = response.content.decode()
    messages = body.split('data-testid="message"')[1:]
    names = [[name for name in ("a.log", "b.log", "c.log") if f"{name}</a>" in message] for message in messages]
    assert names == [[], ["a.log", "b.log"], [], ["c.log"]]
    assert body.index("a.log</a>") < body.index("b.log</a>")
    assert "(5\xa0bytes)" in messages[1] and "(7\xa0bytes)" in messages[1]
    assert sum('"tickets_' in prepared_sql(query["sql"]) for query in queries.captured_queries) == 3  # nav unread badge, the ticket, the thread


def test_thread_names_each_messages_author(owner, owner_client, staff):
    """A customer's full name (or username without one), a staff member's first name beside the Support
    badge; an author whose user is gone: "Customer", or the badge alone for staff."""
    ticket = TicketFactory(created_by=owner)
    colleague = UserFactory(customer=owner.customer, role="technical", username="ops-bot", first_name="", last_name="")
    Message.objects.create(ticket=ticket, author=colleague, body="second")
    Message.objects.create(ticket=ticket, author=staff, is_staff=True, body="third")
    Message.objects.create(ticket=ticket, author=None, body="fourth")
    Message.objects.create(ticket=ticket, author=None, is_staff=True, body="fifth")
    html = owner_client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    headers = [part.split("</strong>")[0].split("<strong>")[1].strip() for part in html.split('data-testid="message"')[1:]]
    assert headers == [f"{owner.first_name} {owner.last_name}", "ops-bot", "Maria", "Customer", ""]
    assert html.count('<span class="badge text-bg-success me-1">Support</span>') == 2
