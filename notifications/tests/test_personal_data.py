"""Account erasure blanks the customer's inbox and mail; rows stay as a record without personal data."""
import pytest
from django.core import mail
from django.utils import timezone

from accounts.personal_data import erasure_handlers, exporters
from accounts.services.deletion import customer_erase
from accounts.tests.factories import StaffUserFactory, UserFactory
from notifications.kinds import Kind
from notifications.models import EmailOutbox, Notification
from notifications.personal_data import erase_notifications
from notifications import services
from notifications.services import ERASED_REASON, email_content, email_enqueue, notify

pytestmark = pytest.mark.django_db
Status = EmailOutbox.Status
LOGIN = {"ip": "198.51.100.23", "time": "1 Dec 2026, 10:00", "browser": "Firefox on Linux"}


def test_erasure_blanks_inbox_and_outbox_but_keeps_kind_and_times(customer):
    stranger = UserFactory(email="stranger@example.com").customer
    sent = notify(customer=customer, kind=Kind.SECURITY_LOGIN, context=LOGIN, link="/accounts/settings/activity/")
    EmailOutbox.objects.filter(notification=sent).update(status=Status.SENT, sent_at=timezone.now(), attempts=1)
    pending = notify(customer=customer, kind=Kind.SECURITY_LOGIN, context=LOGIN)
    EmailOutbox.objects.filter(notification=pending).update(last_error="SMTP 550 owner@example.com: mailbox full")
    link_mail = email_enqueue(to="owner@example.com", subject="Confirm", body_text="https://portal/verify/t0k3n/",
                              customer=customer)
    untouched = notify(customer=stranger, kind=Kind.SECURITY_LOGIN, context=LOGIN)
    staff_mail = email_enqueue(to="desk@provider.example", subject="Staff", body_text="about nobody")
    assert erase_notifications in erasure_handlers()

    customer_erase(customer=customer, actor=StaffUserFactory())

    for notification in Notification.objects.filter(customer=customer):
        assert (notification.subject, notification.body_text, notification.body_html, notification.link,
                notification.context) == ("", "", "", "", {})
        assert notification.kind == Kind.SECURITY_LOGIN and notification.created_at
    emails = EmailOutbox.objects.filter(customer=customer)
    assert emails.count() == 3
    for email in emails:
        assert (email.recipient, email.subject, email.body_text, email.body_html) == ("", "", "", "")
    # Errors quoted the address: gone. Unsent mail is failed with the reason, which names no one.
    outcome = {pk: (status, error) for pk, status, error in emails.values_list("pk", "status", "last_error")}
    assert outcome[EmailOutbox.objects.get(notification=sent).pk] == (Status.SENT, "")
    assert outcome[EmailOutbox.objects.get(notification=pending).pk] == (Status.FAILED, ERASED_REASON)  # never sent now
    assert outcome[link_mail.pk] == (Status.FAILED, ERASED_REASON)
    assert "198.51.100.23" not in str(exporters()["notifications"](customer))

    untouched.refresh_from_db()
    assert "198.51.100.23" in untouched.body_text and untouched.context == LOGIN
    other_email = EmailOutbox.objects.get(notification=untouched)
    assert other_email.recipient == "stranger@example.com" and other_email.status == Status.PENDING
    assert "198.51.100.23" in email_content(other_email)[1]
    staff_mail.refresh_from_db()
    assert (staff_mail.recipient, staff_mail.body_text, staff_mail.status) == (
        "desk@provider.example", "about nobody", Status.PENDING)


def _erase_when_claimed(monkeypatch, customer):
    """The erasure commits between a worker's claim and its reading of the row."""
    claim = services.outbox_claim

    def claim_then_erase(model, pk):
        claimed = claim(model, pk)
        services.customer_notifications_erase(customer=customer)
        return claimed

    monkeypatch.setattr(services, "outbox_claim", claim_then_erase)


@pytest.mark.parametrize("when", ["before the worker", "after its claim", "then staff retry"])
def test_mail_of_an_erased_customer_is_never_sent_empty(customer, monkeypatch, when):
    """The email is rendered from the notification when sent; erased, there is nothing to render."""
    notify(customer=customer, kind=Kind.SECURITY_LOGIN, context=LOGIN)
    email_enqueue(to="owner@example.com", subject="Confirm", body_text="https://portal/verify/t0k3n/", customer=customer)
    if when == "after its claim":
        _erase_when_claimed(monkeypatch, customer)
    else:
        services.customer_notifications_erase(customer=customer)
    if when == "then staff retry":
        assert services.email_retry(email_ids=list(EmailOutbox.objects.values_list("pk", flat=True))) == 2

    ids = EmailOutbox.objects.order_by("pk").values_list("pk", flat=True)  # the notification's email first
    outcomes = [services.email_deliver(email_id=pk).outcome for pk in ids]

    assert outcomes == {"before the worker": ["skipped", "skipped"], "after its claim": ["failed", "skipped"],
                        "then staff retry": ["failed", "failed"]}[when]
    assert mail.outbox == []
    assert set(EmailOutbox.objects.values_list("status", "last_error", "recipient")) == {
        (Status.FAILED, ERASED_REASON, "")}
