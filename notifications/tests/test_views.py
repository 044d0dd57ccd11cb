import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.tests.factories import UserFactory
from core.compiled import prepared_sql
from notifications import services
from notifications.kinds import Kind, MANDATORY_KINDS
from notifications.models import Notification, NotificationPreference

pytestmark = pytest.mark.django_db


def make_notifications(customer, count: int, **fields) -> list[Notification]:
    now = timezone.now()
    return Notification.objects.bulk_create([
        Notification(customer=customer, kind=Kind.PAYMENT_RECEIVED, subject=f"Payment {n}", body_text="t",
                     body_html="<p>t</p>", created_at=now - timezone.timedelta(minutes=n + 1), **fields)
        for n in range(count)
    ])


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def test_inbox_lists_newest_first_with_unread_bold_and_badge(owner_client, customer):
    services.notify(customer=customer, kind=Kind.LOW_BALANCE, context={"balance": "€1.00", "threshold": "€5.00"})
    old = make_notifications(customer, 1, read_at=timezone.now())[0]
    response = owner_client.get(reverse("notifications:inbox"))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index("Low balance: €1.00") < html.index(old.subject)
    assert html.count("fw-bold notification-unread") == 1
    assert 'data-testid="unread-badge"><span class="badge' in html and ">1<span" in html


def test_inbox_paginates(owner_client, customer):
    make_notifications(customer, 45)
    page3 = owner_client.get(reverse("notifications:inbox"), {"page": 3}).content.decode()
    assert "Payment 44" in page3 and "Payment 39" not in page3 and "Page 3 of 3" in page3


def test_empty_inbox_explains_itself(owner_client):
    assert 'data-testid="inbox-empty"' in owner_client.get(reverse("notifications:inbox")).content.decode()


def test_inbox_query_count_is_the_same_for_10_and_500_notifications(owner_client, customer):
    make_notifications(UserFactory().customer, 5)  # someone else's
    url = reverse("notifications:inbox")

    def inbox_queries() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert owner_client.get(url).status_code == 200
        return [prepared_sql(query["sql"]) for query in queries]

    make_notifications(customer, 10)
    small = inbox_queries()
    make_notifications(customer, 490)
    large = inbox_queries()
    assert len(small) == len(large)
    # Ours: the unread badge COUNT, the paginator COUNT and one page of rows (the rest is session/user).
    ours = [sql for sql in large if "notifications_notification" in sql]
    assert len(ours) == 3, "\n".join(ours)


def test_inbox_rows_read_what_inbox_for_reads_for_every_role_and_page(customer):
    from notifications.selectors import INBOX_ROW_FIELDS, inbox_for, inbox_rows

    now = timezone.now()
    kinds = [Kind.PAYMENT_RECEIVED, Kind.TICKET_REPLY, Kind.SECURITY_LOGIN, Kind.SERVICE_RENEWED, Kind.NEWSLETTER]
    Notification.objects.bulk_create([
        Notification(customer=customer, kind=kinds[n % len(kinds)], subject=f"N {n}", body_text="t", body_html="t",
                     created_at=now - timezone.timedelta(minutes=n // 3), read_at=now if n % 4 else None)  # ties: pk decides
        for n in range(23)])
    make_notifications(UserFactory().customer, 3)  # someone else's: never read
    for role in [*User.Role.values, "gone"]:
        user = User(role=role, customer_id=customer.pk)
        expected = list(inbox_for(customer, user=user).order_by("-created_at", "-pk").values(*INBOX_ROW_FIELDS))
        rows, count = inbox_rows(customer, user=user)
        assert count == len(expected), role
        assert list(rows[0:10]) + list(rows[10:20]) + list(rows[20:40]) == expected and list(rows[5:7]) == expected[5:7], role
    assert inbox_rows(customer, user=User(role=User.Role.OWNER, customer_id=None)) == ([], 0)  # sees no kind


def test_viewing_does_not_mark_read_the_post_does(owner_client, customer):
    notification = make_notifications(customer, 1)[0]
    detail = owner_client.get(reverse("notifications:detail", args=[notification.pk]))
    assert detail.status_code == 200 and 'hx-trigger="load"' in detail.content.decode()
    notification.refresh_from_db()
    assert notification.read_at is None

    response = owner_client.post(reverse("notifications:read", args=[notification.pk]), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert 'data-testid="read-at"' in body
    assert 'id="nav-unread-badge" data-testid="unread-badge" hx-swap-oob="true"></span>' in body  # badge now empty
    notification.refresh_from_db()
    assert notification.read_at is not None

    # Without htmx the same form redirects back to the notification.
    assert owner_client.post(reverse("notifications:read", args=[notification.pk])).status_code == 302


def test_read_endpoints_refuse_get(owner_client, customer):
    notification = make_notifications(customer, 1)[0]
    assert owner_client.get(reverse("notifications:read", args=[notification.pk])).status_code == 405
    assert owner_client.get(reverse("notifications:read_all")).status_code == 405


def test_another_customers_notification_is_404(owner_client):
    foreign = make_notifications(UserFactory().customer, 1)[0]
    assert owner_client.get(reverse("notifications:detail", args=[foreign.pk])).status_code == 404
    assert owner_client.post(reverse("notifications:read", args=[foreign.pk])).status_code == 404
    foreign.refresh_from_db()
    assert foreign.read_at is None


def test_mark_all_read_touches_only_this_customer(owner_client, customer):
    make_notifications(customer, 3)
    foreign = make_notifications(UserFactory().customer, 1)[0]
    response = owner_client.post(reverse("notifications:read_all"))
    assert response.status_code == 302
    assert not Notification.objects.filter(customer=customer, read_at__isnull=True).exists()
    foreign.refresh_from_db()
    assert foreign.read_at is None


def test_inbox_requires_login(client):
    assert client.get(reverse("notifications:inbox")).status_code == 302


def test_subscriptions_page_shows_mandatory_kinds_locked(owner_client):
    html = owner_client.get(reverse("notifications:subscriptions")).content.decode()
    assert 'data-testid="mandatory-note"' in html
    for kind in MANDATORY_KINDS:
        assert f'id="id_{kind}" checked disabled' in html
        assert f'name="{kind}"' not in html
    assert 'name="newsletter" id="id_newsletter">' in html  # opt-in: off by default
    assert "owner@example.com" in html  # where the mail goes


def test_subscriptions_save_turns_kinds_off_and_newsletter_on(owner_client, customer):
    response = owner_client.post(reverse("notifications:subscriptions"), {
        # Everything on except payment_received; forged mandatory fields are ignored.
        **{kind: "on" for kind in Kind if kind != Kind.PAYMENT_RECEIVED},
        Kind.INVOICE_ISSUED: "",
    })
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.newsletter is True
    assert NotificationPreference.objects.get(customer=customer, kind=Kind.PAYMENT_RECEIVED).email_enabled is False
    assert not NotificationPreference.objects.filter(kind__in=MANDATORY_KINDS).exists()
    html = owner_client.get(reverse("notifications:subscriptions")).content.decode()
    assert 'name="payment_received" id="id_payment_received">' in html
    assert 'name="newsletter" id="id_newsletter" checked>' in html


def test_subscriptions_need_the_settings_area_but_the_inbox_does_not(client, customer):
    technical = UserFactory(customer=customer, role=User.Role.TECHNICAL)
    client.force_login(technical)
    assert client.get(reverse("notifications:subscriptions")).status_code == 403
    inbox = client.get(reverse("notifications:inbox"))
    assert inbox.status_code == 200 and "Email subscriptions" not in inbox.content.decode()


def test_staff_get_403_on_customer_pages(client):
    from accounts.tests.factories import StaffUserFactory

    client.force_login(StaffUserFactory())
    assert client.get(reverse("notifications:inbox")).status_code == 403


def test_admin_lists_outbox_and_retries_failed_mail(client, customer):
    from accounts.tests.factories import StaffUserFactory
    from notifications.models import EmailOutbox

    services.notify(customer=customer, kind=Kind.INVOICE_ISSUED, context={"invoice_number": "1", "amount": "€1"})
    row = EmailOutbox.objects.get()
    EmailOutbox.objects.filter(pk=row.pk).update(status=EmailOutbox.Status.FAILED, attempts=8, last_error="SMTP 550")
    client.force_login(StaffUserFactory())
    changelist = reverse("admin:notifications_emailoutbox_changelist")
    listing = client.get(changelist, {"status__exact": "failed", "kind__exact": "invoice_issued"})
    assert listing.status_code == 200 and "SMTP 550" in listing.content.decode()
    assert client.get(reverse("admin:notifications_notification_changelist"), {"kind__exact": "invoice_issued"}).status_code == 200
    page = client.get(reverse("admin:notifications_emailoutbox_change", args=[row.pk]))
    # The row stores no body: staff see the message as it is sent, rendered from the notification.
    assert page.status_code == 200 and "We have issued invoice 1 for €1." in page.content.decode()
    client.post(changelist, {"action": "retry_failed", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.status == EmailOutbox.Status.PENDING and row.attempts == 0


def test_a_sign_in_link_is_hidden_from_staff_and_blanked_once_sent(client, customer):
    from accounts.tests.factories import StaffUserFactory
    from notifications.models import EmailOutbox

    secret = services.email_enqueue(to="owner@example.com", subject="Reset your password", customer=customer,
                                    body_text="https://portal.example/accounts/password/reset/MQ/tok-3n/",
                                    contains_secret=True)
    plain = services.email_enqueue(to="desk@provider.example", subject="Ticket", body_text="a visible text")
    client.force_login(StaffUserFactory())
    secret_page = client.get(reverse("admin:notifications_emailoutbox_change", args=[secret.pk])).content.decode()
    assert "tok-3n" not in secret_page and "Hidden: the message contains a sign-in link." in secret_page
    assert "a visible text" in client.get(reverse("admin:notifications_emailoutbox_change", args=[plain.pk])).content.decode()

    assert services.email_deliver(email_id=secret.pk).outcome == "sent"
    assert services.email_deliver(email_id=plain.pk).outcome == "sent"
    assert "tok-3n" in mail.outbox[0].body  # the person got their link
    assert EmailOutbox.objects.filter(pk=secret.pk).values_list("body_text", "body_html").get() == ("", "")
    assert EmailOutbox.objects.get(pk=plain.pk).body_text == "a visible text"


@pytest.mark.parametrize("pending", [True, False])
def test_a_pending_or_failed_sign_in_link_is_stored_sealed_and_admin_refuses_lookups_on_bodies(client, customer, settings,
                                                                                                pending):
    from accounts.tests.factories import StaffUserFactory
    from notifications.models import EmailOutbox

    secret = services.email_enqueue(to="owner@example.com", subject="Reset your password", customer=customer,
                                    body_text="https://portal.example/accounts/password/reset/MQ/tok-3n/",
                                    body_html='<a href="https://portal.example/accounts/password/reset/MQ/tok-3n/">x</a>',
                                    contains_secret=True)
    if not pending:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens: the send fails
        EmailOutbox.objects.filter(pk=secret.pk).update(attempts=settings.NOTIFICATIONS_EMAIL_MAX_ATTEMPTS - 1)
        assert services.email_deliver(email_id=secret.pk).outcome == "failed"
    stored = EmailOutbox.objects.filter(pk=secret.pk).values_list("body_text", "body_html").get()
    assert "tok-3n" not in "".join(stored) and "password/reset" not in "".join(stored)
    assert not EmailOutbox.objects.filter(body_text__contains="tok-3n").exists()

    client.force_login(StaffUserFactory())
    changelist = reverse("admin:notifications_emailoutbox_changelist")
    for lookup in ("body_text__regex", "body_text__contains", "body_html__icontains", "body_text"):
        response = client.get(changelist, {lookup: "password/reset/MQ/t"})
        assert response.status_code == 400, lookup


def test_admin_shows_an_erased_email_without_its_text(client, customer):
    from accounts.tests.factories import StaffUserFactory
    from notifications.models import EmailOutbox

    services.notify(customer=customer, kind=Kind.INVOICE_ISSUED, context={"invoice_number": "1", "amount": "€1"})
    services.customer_notifications_erase(customer=customer)
    client.force_login(StaffUserFactory())
    page = client.get(reverse("admin:notifications_emailoutbox_change", args=[EmailOutbox.objects.get().pk]))
    assert page.status_code == 200 and "We have issued invoice" not in page.content.decode()
