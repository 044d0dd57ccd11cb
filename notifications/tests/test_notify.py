from datetime import datetime, timezone

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.db import IntegrityError, transaction

from notifications import services
from notifications.bulk import Notice, notify_many
from notifications.kinds import CONTEXT_KEYS, KINDS, MANDATORY_KINDS, Category, Kind
from notifications.models import EmailOutbox, Notification, NotificationPreference

pytestmark = pytest.mark.django_db

INVOICE_CONTEXT = {"invoice_number": "INV-2026-0042", "amount": "€12.50", "due_date": "2026-12-01"}


def test_every_kind_has_a_category_context_keys_and_renders_in_both_languages(customer):
    assert set(KINDS) == set(Kind) == set(CONTEXT_KEYS)
    for language in ("en", "ru"):
        customer.language = language
        for kind in Kind:
            context = {key: f"<{key}>" for key in CONTEXT_KEYS[kind]}
            notification = services.notify(customer=customer, kind=kind, context=context)
            assert notification.subject and "\n" not in notification.subject
            assert notification.body_text and notification.body_html
            # Context is escaped in HTML, verbatim in text.
            assert "&lt;" in notification.body_html
            assert "<" in notification.body_text
            assert KINDS[kind].category in set(Category)


def test_notify_stores_inbox_row_and_outbox_email_delivered_after_commit(customer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notification = services.notify(
            customer=customer, kind=Kind.INVOICE_ISSUED, context=INVOICE_CONTEXT, link="/billing/invoices/42/"
        )
    assert notification.subject == "Invoice INV-2026-0042 issued: €12.50"
    assert "We have issued invoice INV-2026-0042 for €12.50." in notification.body_text
    assert notification.read_at is None
    email = EmailOutbox.objects.get()
    assert email.notification == notification and email.status == EmailOutbox.Status.PENDING
    assert email.recipient == "owner@example.com" and email.subject == notification.subject
    assert (email.body_text, email.body_html) == ("", "")  # rendered from the notification when sent
    _subject, text, html = services.email_content(email)
    assert f"{settings.PORTAL_BASE_URL}/billing/invoices/42/" in text
    assert f'href="{settings.PORTAL_BASE_URL}/billing/invoices/42/"' in html
    assert settings.PORTAL_NAME in text and settings.PORTAL_NAME in html
    assert len(callbacks) == 1  # one enqueue per email, only after commit
    assert mail.outbox == []


@pytest.mark.parametrize("language", ["en", "ru"])
def test_notify_and_notify_many_store_the_same_outbox_row_and_send_the_same_mail(customer, language):
    """One shape of a notification's email: the single and the set-based path write the same row, and
    delivery renders the same message from either."""
    customer.language, customer.email_billing = language, "accounts@corp.example"
    customer.save()
    context = {**INVOICE_CONTEXT, "invoice_number": "INV <7> & Co"}  # escaped in HTML, verbatim in text
    link = "/billing/invoices/7/"
    with time_machine.travel(datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc), tick=False):
        single = services.notify(customer=customer, kind=Kind.INVOICE_ISSUED, context=context, link=link)
        assert notify_many(kind=Kind.INVOICE_ISSUED, notices=[Notice(customer=customer, context=context, link=link)]) == 1
    many = Notification.objects.exclude(pk=single.pk).get()
    assert (single.subject, single.body_text, single.body_html) == (many.subject, many.body_text, many.body_html)
    one, other = EmailOutbox.objects.order_by("pk")
    assert (one.notification_id, other.notification_id) == (single.pk, many.pk)

    def row(email):
        return {field.attname: getattr(email, field.attname) for field in EmailOutbox._meta.concrete_fields
                if field.attname not in ("id", "notification_id")}

    assert row(one) == row(other)
    assert (one.recipient, one.body_text, one.body_html) == ("accounts@corp.example", "", "")

    assert [services.email_deliver(email_id=email.pk).outcome for email in (one, other)] == ["sent", "sent"]

    def message(sent):
        headers = {name: value for name, value in sent.extra_headers.items() if name != "X-Portal-Outbox-Id"}
        return sent.subject, sent.body, sent.alternatives, sent.from_email, sent.to, headers

    first, second = mail.outbox
    assert message(first) == message(second)
    assert "INV <7> & Co" in first.body and "INV &lt;7&gt; &amp; Co" in first.alternatives[0][0]


def test_unknown_kind_and_bad_link_are_programming_errors(customer):
    with pytest.raises(ValueError):
        services.notify(customer=customer, kind="no_such_kind", context={})
    with pytest.raises(ValueError):
        services.notify(customer=customer, kind=Kind.LOW_BALANCE, context={}, link="https://evil.example/")
    assert not Notification.objects.exists()


def test_dedupe_key_creates_once(customer):
    key = "order:7:period:3:7d"
    first = services.notify(customer=customer, kind=Kind.SERVICE_EXPIRING, context={"service": "VPS"}, dedupe_key=key)
    second = services.notify(customer=customer, kind=Kind.SERVICE_EXPIRING, context={"service": "VPS"}, dedupe_key=key)
    assert first is not None and second is None
    assert Notification.objects.count() == 1 and EmailOutbox.objects.count() == 1
    # Another kind with the same key is a different notice.
    assert services.notify(customer=customer, kind=Kind.RENEWAL_FAILED, context={}, dedupe_key=key) is not None


def test_dedupe_constraint_is_enforced_by_the_database(customer):
    Notification.objects.create(customer=customer, kind=Kind.LOW_BALANCE, subject="s", body_text="t", body_html="h",
                                dedupe_key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(customer=customer, kind=Kind.LOW_BALANCE, subject="s", body_text="t",
                                    body_html="h", dedupe_key="k")
    # Without a key there is no limit.
    for _ in range(2):
        Notification.objects.create(customer=customer, kind=Kind.LOW_BALANCE, subject="s", body_text="t", body_html="h")


def test_opted_out_kind_is_stored_but_not_emailed(customer):
    services.preferences_update(customer=customer, email_enabled={Kind.PAYMENT_RECEIVED: False})
    notification = services.notify(customer=customer, kind=Kind.PAYMENT_RECEIVED, context={"amount": "€5.00"})
    assert Notification.objects.filter(pk=notification.pk).exists()
    assert not EmailOutbox.objects.exists()


def test_mandatory_kind_is_emailed_even_when_a_preference_says_off(customer):
    # A stale or forged row must not silence a mandatory notice.
    NotificationPreference.objects.create(customer=customer, kind=Kind.SERVICE_SUSPENDED, email_enabled=False)
    services.preferences_update(customer=customer, email_enabled={kind: False for kind in MANDATORY_KINDS})
    for kind in MANDATORY_KINDS:
        services.notify(customer=customer, kind=kind, context={"service": "VPS-1"})
    assert EmailOutbox.objects.count() == len(MANDATORY_KINDS)


def test_newsletter_is_opt_in_and_is_the_customer_newsletter_flag(customer):
    assert customer.newsletter is False
    services.notify(customer=customer, kind=Kind.NEWSLETTER, context={"title": "News", "text": "Hi"})
    assert not EmailOutbox.objects.exists()
    services.preferences_update(customer=customer, email_enabled={Kind.NEWSLETTER: True})
    customer.refresh_from_db()
    assert customer.newsletter is True
    services.notify(customer=customer, kind=Kind.NEWSLETTER, context={"title": "News", "text": "Hi"})
    assert EmailOutbox.objects.get().subject == "News"
    assert not NotificationPreference.objects.filter(kind=Kind.NEWSLETTER).exists()


@pytest.mark.parametrize(
    ("kind", "context", "expected"),
    [
        (Kind.INVOICE_ISSUED, {}, "billing@corp.example"),
        (Kind.TICKET_REPLY, {}, "support@corp.example"),
        (Kind.TICKET_REPLY, {"category": "billing"}, "billing@corp.example"),
        (Kind.TICKET_REPLY, {"category": "abuse"}, "abuse@corp.example"),
        (Kind.TICKET_REPLY, {"category": "marketing"}, "support@corp.example"),
        (Kind.ABUSE_REPORT, {}, "abuse@corp.example"),
        (Kind.SECURITY_LOGIN, {}, "owner@example.com"),
    ],
)
def test_routing_by_category(customer, kind, context, expected):
    customer.email_billing = "billing@corp.example"
    customer.email_support = "support@corp.example"
    customer.email_abuse = "abuse@corp.example"
    customer.save()
    services.notify(customer=customer, kind=kind, context=context)
    assert EmailOutbox.objects.get().recipient == expected


def test_blank_category_address_falls_back_to_the_owner(customer):
    services.notify(customer=customer, kind=Kind.ABUSE_REPORT, context={})
    assert EmailOutbox.objects.get().recipient == "owner@example.com"


def test_notify_rolls_back_with_the_callers_transaction(customer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            services.notify(customer=customer, kind=Kind.INVOICE_ISSUED, context=INVOICE_CONTEXT)
            raise RuntimeError("caller failed")
    assert not Notification.objects.exists() and not EmailOutbox.objects.exists()
    assert callbacks == []


def test_context_must_be_json_serializable(customer):
    from decimal import Decimal

    with pytest.raises(TypeError):
        services.notify(customer=customer, kind=Kind.LOW_BALANCE, context={"balance": Decimal("1.00")})


def test_email_enqueue_is_idempotent_by_key(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        first = services.email_enqueue(to="sales@host.example", subject="New order", body_text="x", dedupe_key="d1")
        second = services.email_enqueue(to="sales@host.example", subject="New order", body_text="x", dedupe_key="d1")
    assert first.customer is None and second is None
    assert EmailOutbox.objects.count() == 1 and len(callbacks) == 1


def test_demo_seed_uses_notify(owner, customer):
    import io

    from notifications import demo

    demo.seed(customer=customer, owner=owner, stdout=io.StringIO())
    assert Notification.objects.filter(customer=customer).count() == 3
    assert Notification.objects.filter(customer=customer, read_at__isnull=True).count() == 2
    assert EmailOutbox.objects.filter(kind=Kind.SECURITY_LOGIN).count() == 1  # mandatory; newsletter is opt-in


@pytest.mark.django_db(transaction=True)
def test_concurrent_notices_with_one_dedupe_key_create_one_row():
    import threading

    from django.db import connection

    from accounts.tests.factories import UserFactory

    customer = UserFactory().customer
    barrier = threading.Barrier(4)
    results = []

    def send():
        try:
            barrier.wait()
            with transaction.atomic():
                results.append(services.notify(customer=customer, kind=Kind.SERVICE_EXPIRING,
                                               context={"service": "VPS"}, dedupe_key="order:1:period:2:7d"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and sum(result is not None for result in results) == 1
    assert Notification.objects.count() == 1 and EmailOutbox.objects.count() == 1
