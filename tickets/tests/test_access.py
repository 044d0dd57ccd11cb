"""Scoping: another customer's ticket, message or attachment is a 404; roles without tickets get 403."""
import pytest
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import StaffUserFactory, UserFactory
from tickets import services
from tickets.models import Ticket
from tickets.tests.factories import TicketFactory, department, upload
from tickets.uploads import check_upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def foreign_ticket(staff):
    stranger = UserFactory()
    ticket = services.ticket_create(
        customer=stranger.customer, user=stranger, department=department(), subject="Theirs", priority="normal",
        body="private", files=[check_upload(upload("theirs.png"))],
    )
    services.message_post_staff(ticket=ticket, staff_user=staff, body="staff answer")
    return ticket


def test_other_customers_ticket_is_404_on_every_url(owner_client, foreign_ticket):
    for name in ("detail",):
        assert owner_client.get(reverse(f"tickets:{name}", args=[foreign_ticket.pk])).status_code == 404
    for name in ("reply", "close", "reopen", "seen"):
        response = owner_client.post(reverse(f"tickets:{name}", args=[foreign_ticket.pk]), {"body": "hijack"})
        assert response.status_code == 404, name
    foreign_ticket.refresh_from_db()
    assert foreign_ticket.status == Ticket.Status.ANSWERED
    assert foreign_ticket.customer_unread is True
    assert not foreign_ticket.messages.filter(body="hijack").exists()


def test_other_customers_message_and_attachment_are_404(owner_client, foreign_ticket):
    attachment = foreign_ticket.messages.first().attachments.get()
    assert owner_client.get(reverse("tickets:attachment", args=[attachment.pk])).status_code == 404
    # Their messages never appear in our list or search either.
    response = owner_client.get(reverse("tickets:list"), {"status": "all", "q": str(foreign_ticket.number)})
    assert b"Theirs" not in response.content


def test_internal_notes_and_their_attachments_never_reach_the_customer(owner, owner_client, staff):
    ticket = TicketFactory(created_by=owner)
    note = services.message_post_staff(
        ticket=ticket, staff_user=staff, body="Customer is on the watch list", is_internal=True,
        files=[check_upload(upload("internal.png"))],
    )
    response = owner_client.get(reverse("tickets:detail", args=[ticket.pk]))
    assert response.status_code == 200
    assert b"watch list" not in response.content
    assert owner_client.get(reverse("tickets:attachment", args=[note.attachments.get().pk])).status_code == 404
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN and not ticket.customer_unread  # a note changes nothing


def test_finance_user_gets_403_technical_user_works(owner):
    ticket = TicketFactory(created_by=owner)
    finance = UserFactory(customer=owner.customer, role=User.Role.FINANCE)
    technical = UserFactory(customer=owner.customer, role=User.Role.TECHNICAL)
    attachment_url = reverse("tickets:attachment", args=[9999])
    from django.test import Client

    finance_client = Client()
    finance_client.force_login(finance)
    for url in (reverse("tickets:list"), reverse("tickets:create"), reverse("tickets:detail", args=[ticket.pk]),
                attachment_url):
        assert finance_client.get(url).status_code == 403, url
    assert finance_client.post(reverse("tickets:reply", args=[ticket.pk]), {"body": "x"}).status_code == 403
    # The nav item is hidden for a role without tickets.
    assert b'data-testid="nav-tickets"' not in finance_client.get(reverse("dashboard")).content

    technical_client = Client()
    technical_client.force_login(technical)
    assert technical_client.get(reverse("tickets:detail", args=[ticket.pk])).status_code == 200
    assert b'data-testid="nav-tickets"' in technical_client.get(reverse("dashboard")).content


def test_staff_and_anonymous_are_kept_out_of_customer_pages(client, owner):
    ticket = TicketFactory(created_by=owner)
    response = client.get(reverse("tickets:detail", args=[ticket.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(StaffUserFactory())
    assert client.get(reverse("tickets:list")).status_code == 403


def test_state_changing_urls_refuse_get(owner_client, owner):
    ticket = TicketFactory(created_by=owner)
    for name in ("reply", "close", "reopen", "seen"):
        assert owner_client.get(reverse(f"tickets:{name}", args=[ticket.pk])).status_code == 405
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN
