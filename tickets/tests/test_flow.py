"""Status flow, reopen window, auto-close with a frozen clock, rate limit, and who gets which email."""
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from accounts.tests.factories import UserFactory
from billing.tests.concurrency import run_concurrently
from notifications.models import EmailOutbox, Notification
from notifications.services import email_content
from tickets import services
from tickets.models import Department, Ticket
from tickets.tests.factories import department

pytestmark = pytest.mark.django_db
Status = Ticket.Status
START = datetime(2026, 3, 2, 9, 0, tzinfo=dt_timezone.utc)


def open_ticket(user, slug="support", subject="Server down"):
    return services.ticket_create(customer=user.customer, user=user, department=department(slug),
                                  subject=subject, priority="high", body="It is down.")


def refreshed(ticket):
    ticket.refresh_from_db()
    return ticket


def test_status_flow_open_answered_customer_replied_closed(owner, staff):
    with time_machine.travel(START, tick=False) as clock:
        ticket = open_ticket(owner)
        assert (ticket.status, ticket.awaiting_staff_since, ticket.last_reply_by) == (Status.OPEN, START, owner)
        assert ticket.number >= 10001

        clock.shift(timedelta(hours=1))
        services.message_post_customer(ticket=ticket, user=owner, body="Still down.")
        ticket = refreshed(ticket)
        assert ticket.status == Status.OPEN and ticket.awaiting_staff_since == START  # waiting since the first message

        clock.shift(timedelta(hours=2))
        services.message_post_staff(ticket=ticket, staff_user=staff, body="Rebooted.")
        ticket = refreshed(ticket)
        assert ticket.status == Status.ANSWERED
        assert ticket.customer_unread and ticket.last_reply_is_staff and ticket.last_reply_by == staff
        assert ticket.awaiting_staff_since is None and ticket.assigned_to == staff
        assert ticket.status_changed_at == START + timedelta(hours=3)

        clock.shift(timedelta(hours=1))
        services.message_post_customer(ticket=ticket, user=owner, body="Works, thanks")
        ticket = refreshed(ticket)
        assert ticket.status == Status.CUSTOMER_REPLIED
        assert ticket.awaiting_staff_since == START + timedelta(hours=4)

        services.ticket_close(ticket=ticket, user=owner)
        ticket = refreshed(ticket)
        assert (ticket.status, ticket.closed_at, ticket.awaiting_staff_since) == (Status.CLOSED, START + timedelta(hours=4), None)
        with pytest.raises(ValidationError, match="closed"):
            services.message_post_customer(ticket=ticket, user=owner, body="one more")


def test_reopen_allowed_only_within_the_window(owner, staff, settings):
    settings.TICKETS_REOPEN_DAYS = 14
    with time_machine.travel(START, tick=False) as clock:
        ticket = open_ticket(owner)
        services.message_post_staff(ticket=ticket, staff_user=staff, body="Fixed.")
        services.ticket_close(ticket=ticket, user=owner)
        clock.shift(timedelta(days=14))
        services.ticket_reopen(ticket=ticket, user=owner)
        ticket = refreshed(ticket)
        assert ticket.status == Status.CUSTOMER_REPLIED and ticket.closed_at is None
        assert EmailOutbox.objects.filter(recipient=department().email, subject__contains="reopened").exists()

        services.ticket_close(ticket=ticket, user=owner)
        clock.shift(timedelta(days=14, seconds=1))
        with pytest.raises(ValidationError, match="more than 14 days"):
            services.ticket_reopen(ticket=ticket, user=owner)
        assert refreshed(ticket).status == Status.CLOSED
        services.ticket_reopen(ticket=ticket, user=staff)  # staff may reopen any time
        assert refreshed(ticket).status == Status.CUSTOMER_REPLIED


def test_autoclose_warns_first_then_closes_idempotently(owner, staff, settings):
    settings.TICKETS_AUTOCLOSE_DAYS = 7
    settings.TICKETS_AUTOCLOSE_WARNING_DAYS = 2
    with time_machine.travel(START, tick=False) as clock:
        ticket = open_ticket(owner)
        waiting_on_staff = open_ticket(owner, subject="Not answered yet")
        services.message_post_staff(ticket=ticket, staff_user=staff, body="Please check.")

        clock.shift(timedelta(days=5) - timedelta(minutes=1))
        assert services.tickets_autoclose_sweep() == {"warned": 0, "closed": 0}

        clock.shift(timedelta(minutes=1))  # day 5: warning
        assert services.tickets_autoclose_sweep() == {"warned": 1, "closed": 0}
        assert services.tickets_autoclose_sweep() == {"warned": 0, "closed": 0}  # same day again: nothing
        call_command("tickets_autoclose")
        warnings = Notification.objects.filter(customer=owner.customer, kind="ticket_autoclose_warning")
        assert warnings.count() == 1
        assert warnings.get().link == reverse("tickets:detail", args=[ticket.pk])
        assert refreshed(ticket).status == Status.ANSWERED

        clock.shift(timedelta(days=2) - timedelta(minutes=1))
        assert services.tickets_autoclose_sweep() == {"warned": 0, "closed": 0}
        clock.shift(timedelta(minutes=1))  # day 7: closed
        assert services.tickets_autoclose_sweep() == {"warned": 0, "closed": 1}
        ticket = refreshed(ticket)
        assert ticket.status == Status.CLOSED and ticket.closed_at == START + timedelta(days=7)
        assert refreshed(waiting_on_staff).status == Status.OPEN  # only "answered" tickets auto-close
        assert warnings.count() == 1


def test_autoclose_after_an_outage_still_warns_before_closing(owner, staff, settings):
    settings.TICKETS_AUTOCLOSE_DAYS = 7
    settings.TICKETS_AUTOCLOSE_WARNING_DAYS = 2
    with time_machine.travel(START, tick=False) as clock:
        ticket = open_ticket(owner)
        services.message_post_staff(ticket=ticket, staff_user=staff, body="Please check.")
        clock.shift(timedelta(days=30))  # the job did not run for a month
        assert services.tickets_autoclose_sweep() == {"warned": 1, "closed": 0}
        clock.shift(timedelta(days=1))
        assert services.tickets_autoclose_sweep() == {"warned": 0, "closed": 0}
        clock.shift(timedelta(days=1))
        assert services.tickets_autoclose_sweep() == {"warned": 0, "closed": 1}


def test_customer_reply_after_warning_resets_the_autoclose(owner, staff, settings):
    settings.TICKETS_AUTOCLOSE_DAYS = 7
    settings.TICKETS_AUTOCLOSE_WARNING_DAYS = 2
    with time_machine.travel(START, tick=False) as clock:
        ticket = open_ticket(owner)
        services.message_post_staff(ticket=ticket, staff_user=staff, body="Please check.")
        clock.shift(timedelta(days=5))
        services.tickets_autoclose_sweep()
        services.message_post_customer(ticket=ticket, user=owner, body="Still checking")
        clock.shift(timedelta(days=3))
        assert services.tickets_autoclose_sweep() == {"warned": 0, "closed": 0}
        assert refreshed(ticket).status == Status.CUSTOMER_REPLIED


def test_staff_reply_notifies_customer_at_the_department_category_address(owner, staff):
    customer = owner.customer
    customer.email_support = "tech@client.example"
    customer.email_billing = "accounts@client.example"
    customer.save()
    support_ticket = open_ticket(owner, "support")
    billing_ticket = open_ticket(owner, "billing")
    services.message_post_staff(ticket=support_ticket, staff_user=staff, body="Tech answer")
    services.message_post_staff(ticket=billing_ticket, staff_user=staff, body="Billing answer")
    services.message_post_staff(ticket=billing_ticket, staff_user=staff, body="note", is_internal=True)

    replies = Notification.objects.filter(customer=customer, kind="ticket_reply").order_by("pk")
    assert [n.link for n in replies] == [reverse("tickets:detail", args=[t.pk]) for t in (support_ticket, billing_ticket)]
    assert replies[0].context["category"] == "support" and replies[1].context["category"] == "billing"
    assert list(EmailOutbox.objects.filter(kind="ticket_reply").order_by("pk").values_list("recipient", flat=True)) == [
        "tech@client.example", "accounts@client.example"]
    assert "Tech answer" in email_content(EmailOutbox.objects.filter(kind="ticket_reply").order_by("pk").first())[1]


def test_customer_messages_email_the_department_address(owner, settings):
    abuse = department("abuse")
    abuse.email = "abuse-desk@provider.example"
    abuse.save()
    ticket = open_ticket(owner, "abuse", subject="Spam from 203.0.113.9")
    services.message_post_customer(ticket=ticket, user=owner, body="More spam <b>today</b>")
    staff_mail = EmailOutbox.objects.filter(customer=owner.customer, notification__isnull=True).order_by("pk")
    assert list(staff_mail.values_list("recipient", flat=True)) == ["abuse-desk@provider.example"] * 2
    assert f"#{ticket.number}" in staff_mail[0].subject and "New ticket" in staff_mail[0].subject
    assert "Customer reply" in staff_mail[1].subject
    assert "More spam <b>today</b>" in staff_mail[1].body_text  # plain text mail, no HTML part
    assert f"/admin/tickets/ticket/{ticket.pk}/change/" in staff_mail[1].body_text
    assert not Notification.objects.filter(customer=owner.customer).exists()  # the customer is not notified


def test_rate_limit_on_new_tickets_per_hour(owner_client, owner, settings):
    settings.TICKETS_NEW_PER_HOUR = 2
    data = {"department": department().pk, "subject": "Help", "priority": "normal", "body": "Please"}
    with time_machine.travel(START, tick=False) as clock:
        assert owner_client.post(reverse("tickets:create"), data).status_code == 302
        assert owner_client.post(reverse("tickets:create"), data).status_code == 302
        response = owner_client.post(reverse("tickets:create"), data)
        assert response.status_code == 200
        assert "at most 2 tickets per hour" in response.content.decode()
        assert Ticket.objects.count() == 2
        clock.shift(timedelta(hours=1, seconds=1))
        assert owner_client.post(reverse("tickets:create"), data).status_code == 302
    # Another customer has their own allowance.
    assert open_ticket(UserFactory()).pk


@pytest.mark.django_db(transaction=True)
def test_rate_limit_holds_under_concurrent_submissions(settings):
    settings.TICKETS_NEW_PER_HOUR = 2
    user = UserFactory()
    support = Department.objects.get(slug="support")
    created, errors = run_concurrently(
        lambda: services.ticket_create(customer=user.customer, user=user, department=support, subject="Race",
                                       priority="normal", body="x"), [()] * 5)
    assert len(created) == 2 and [type(error) for error in errors] == [ValidationError] * 3
    assert Ticket.objects.filter(customer=user.customer).count() == 2


def test_inactive_department_is_not_offered_and_refused(owner):
    abuse = department("abuse")
    abuse.is_active = False
    abuse.save()
    with pytest.raises(ValidationError):
        open_ticket(owner, "abuse")


def test_database_refuses_inconsistent_rows(owner):
    from django.db import IntegrityError, transaction

    ticket = open_ticket(owner)
    with pytest.raises(IntegrityError), transaction.atomic():
        Ticket.objects.filter(pk=ticket.pk).update(status=Status.CLOSED)  # closed without closed_at
    with pytest.raises(IntegrityError), transaction.atomic():
        ticket.messages.create(body="note", is_internal=True, is_staff=False)


def test_demo_seed_creates_answered_tickets(owner, staff):
    import io

    from tickets import demo

    demo.seed(customer=owner.customer, owner=owner, stdout=io.StringIO())
    tickets = Ticket.objects.filter(customer=owner.customer).order_by("pk")
    assert [t.status for t in tickets] == [Status.ANSWERED, Status.CLOSED]
    assert tickets[0].customer_unread and tickets[0].messages.filter(is_internal=True).count() == 1
