"""Account erasure removes what the customer wrote in tickets; staff replies and other customers stay."""
import pytest
from django.utils import translation

from accounts.models import Customer
from accounts.personal_data import exporters
from accounts.services.deletion import customer_erase
from accounts.tests.factories import UserFactory
from notifications.models import EmailOutbox
from tickets import services
from tickets.models import Attachment, Message, Ticket
from tickets.tests.conftest import stored_files
from tickets.tests.factories import PDF_BYTES, department, upload
from tickets.uploads import check_upload

pytestmark = pytest.mark.django_db


def ticket_with_files(user, *, subject: str, body: str) -> Ticket:
    return services.ticket_create(
        customer=user.customer, user=user, department=department("support"), subject=subject, priority="normal",
        body=body, files=[check_upload(upload("passport.pdf", PDF_BYTES, "application/pdf"))],
    )


@pytest.mark.parametrize("language", ["en", "ru"])
def test_erasure_redacts_the_customers_messages_and_files_and_leaves_others(
        owner, staff, private_media, django_capture_on_commit_callbacks, language):
    Customer.objects.filter(pk=owner.customer_id).update(language=language)
    owner.customer.refresh_from_db()
    ticket = ticket_with_files(owner, subject="John Smith, 12 Baker St", body="My IP is 203.0.113.5")
    services.message_post_staff(ticket=ticket, staff_user=staff, body="We rebooted the server.",
                                files=[check_upload(upload("log.pdf", PDF_BYTES, "application/pdf"))])
    services.message_post_customer(ticket=ticket, user=owner, body="Thanks, call me at +44 20 7946 0000")
    stranger = UserFactory()
    kept = ticket_with_files(stranger, subject="Stranger's subject", body="Stranger's message")
    files_before = set(stored_files(private_media))
    stranger_file = Attachment.objects.get(message__ticket=kept).file.path

    with django_capture_on_commit_callbacks(execute=True):
        customer_erase(customer=owner.customer, actor=staff)

    with translation.override(language):
        removed = translation.gettext("[removed at the customer's request]")
    if language == "ru":
        assert removed != "[removed at the customer's request]"
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CLOSED and ticket.subject == removed
    bodies = dict(Message.objects.filter(ticket=ticket).values_list("pk", "body"))
    customer_bodies = list(Message.objects.filter(ticket=ticket, is_staff=False).values_list("body", flat=True))
    assert customer_bodies == [removed, removed]
    assert "We rebooted the server." in bodies.values()  # staff replies are the provider's record
    assert list(Attachment.objects.filter(message__ticket=ticket).values_list("original_name", flat=True)) == ["log.pdf"]
    remaining = set(stored_files(private_media))
    assert len(files_before - remaining) == 1 and any(str(path) == stranger_file for path in remaining)
    department_mail = EmailOutbox.objects.filter(dedupe_key__startswith=f"ticket:{ticket.pk}:")
    assert department_mail.count() == 2
    assert set(department_mail.values_list("recipient", "subject", "body_text")) == {("", "", "")}
    exported = exporters()["tickets"](owner.customer)
    assert "203.0.113.5" not in str(exported) and "Baker" not in str(exported) and "passport" not in str(exported)

    kept.refresh_from_db()
    assert kept.subject == "Stranger's subject" and kept.status == Ticket.Status.OPEN
    assert Message.objects.get(ticket=kept).body == "Stranger's message"
    assert Attachment.objects.filter(message__ticket=kept).count() == 1
    assert "Stranger's message" in EmailOutbox.objects.get(dedupe_key__startswith=f"ticket:{kept.pk}:").body_text
