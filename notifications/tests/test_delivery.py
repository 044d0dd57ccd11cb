import email
import email.header
import uuid
from datetime import timedelta

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from accounts.tests.factories import UserFactory
from billing.tests.concurrency import run_concurrently
from core import enqueue
from notifications import services, tasks
from notifications.kinds import Kind
from notifications.models import EmailOutbox, Notification
from notifications.tests import backends
from portal.celery import app as celery_app
from core.tests.net import free_port

Status = EmailOutbox.Status
INVOICE_CONTEXT = {"invoice_number": "INV-7", "amount": "€9.99", "due_date": "2026-12-01"}


def make_email(customer, kind=Kind.INVOICE_ISSUED, context=INVOICE_CONTEXT) -> EmailOutbox:
    services.notify(customer=customer, kind=kind, context=context, link="/billing/invoices/7/")
    return EmailOutbox.objects.latest("pk")


class SmtpSink:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp_server(settings):
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = False, "", ""
    yield sink
    controller.stop()


@pytest.fixture
def smtp_down(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", free_port(), False


@pytest.mark.django_db
def test_real_smtp_receives_both_parts(smtp_server, customer):
    customer.email_billing = "accounts@corp.example"
    customer.save()
    outbox_row = make_email(customer)

    assert services.email_deliver(email_id=outbox_row.pk).outcome == "sent"

    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["accounts@corp.example"]
    message = email.message_from_bytes(envelope.content)
    assert str(email.header.make_header(email.header.decode_header(message["Subject"]))) == "Invoice INV-7 issued: €9.99"
    assert settings.PORTAL_NAME in message["From"]
    assert message.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_payload(decode=True).decode() for part in message.walk()
             if not part.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    link = f"{settings.PORTAL_BASE_URL}/billing/invoices/7/"
    assert "We have issued invoice INV-7 for €9.99." in parts["text/plain"] and link in parts["text/plain"]
    assert "<p>We have issued invoice INV-7 for €9.99.</p>" in parts["text/html"] and f'href="{link}"' in parts["text/html"]

    outbox_row.refresh_from_db()
    assert (outbox_row.status, outbox_row.attempts, outbox_row.last_error) == (Status.SENT, 1, "")
    assert outbox_row.sent_at is not None
    # A sent row is never sent again, whoever asks.
    assert services.email_deliver(email_id=outbox_row.pk).outcome == "skipped"
    assert len(smtp_server.envelopes) == 1


@pytest.mark.django_db
def test_failure_keeps_error_and_backs_off_exponentially_until_failed(smtp_down, customer, settings):
    settings.NOTIFICATIONS_EMAIL_MAX_ATTEMPTS = 3
    row = make_email(customer)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        result = services.email_deliver(email_id=row.pk)
        row.refresh_from_db()
        assert (result.outcome, result.retry_in) == ("retry", 60)
        assert row.status == Status.PENDING and row.attempts == 1
        assert "ConnectionRefusedError" in row.last_error
        assert row.next_attempt_at == timezone.now() + timedelta(seconds=60)
        # Not due yet: a duplicate task does nothing.
        assert services.email_deliver(email_id=row.pk).outcome == "skipped"

        traveller.shift(60)
        assert services.email_deliver(email_id=row.pk).retry_in == 120
        traveller.shift(120)
        assert services.email_deliver(email_id=row.pk).outcome == "failed"
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.FAILED, 3)
    assert "ConnectionRefusedError" in row.last_error


@pytest.mark.django_db
def test_an_email_whose_notification_was_deleted_fails_instead_of_going_out_empty(customer):
    row = make_email(customer)
    Notification.objects.all().delete()  # staff may delete an inbox row; its email stores no copy of the text
    assert services.email_deliver(email_id=row.pk).outcome == "failed"
    row.refresh_from_db()
    assert (row.status, row.last_error, row.notification_id) == (Status.FAILED, services.ERASED_REASON, None)
    assert mail.outbox == []


def test_backoff_doubles_and_is_capped(settings):
    settings.NOTIFICATIONS_EMAIL_RETRY_BASE_SECONDS = 60
    assert [services.retry_delay_seconds(n) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]


@pytest.mark.django_db
def test_a_failed_send_is_retried_by_the_sweeper_once_its_backoff_passed(smtp_down, customer, queued_deliveries):
    row = make_email(customer)
    assert tasks.email_deliver_task(email_id=row.pk) == "retry"
    assert queued_deliveries == []  # no countdown task: the row's next_attempt_at drives the retry
    row.refresh_from_db()
    assert row.next_attempt_at > timezone.now() + timedelta(seconds=55)
    assert services.outbox_sweep() == []
    with time_machine.travel(row.next_attempt_at + timedelta(seconds=1)):
        assert services.outbox_sweep() == [row.pk]


@pytest.mark.django_db
def test_notify_queues_delivery_on_commit_and_the_task_sends(customer, django_capture_on_commit_callbacks,
                                                             queued_deliveries):
    queued = queued_deliveries
    with django_capture_on_commit_callbacks(execute=True):
        services.notify(customer=customer, kind=Kind.LOW_BALANCE, context={"balance": "€1", "threshold": "€5"})
        assert queued == []  # nothing before commit
    row = EmailOutbox.objects.get()
    assert queued == [{"kwargs": {"email_id": row.pk}}]
    assert tasks.email_deliver_task(**queued[0]["kwargs"]) == "sent"
    assert [m.to for m in mail.outbox] == [["owner@example.com"]]
    assert mail.outbox[0].alternatives[0][1] == "text/html"


@pytest.mark.django_db(transaction=True)
def test_two_workers_delivering_the_same_row_send_it_once(settings):
    settings.EMAIL_BACKEND = "notifications.tests.backends.SlowRecordingBackend"
    backends.SENT.clear()
    customer = UserFactory().customer
    row = make_email(customer)
    outcomes, errors = run_concurrently(lambda: services.email_deliver(email_id=row.pk).outcome, [(), ()])
    assert not errors
    assert sorted(outcomes) == ["sent", "skipped"]
    assert len(backends.SENT) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.SENT, 1)


@pytest.mark.django_db(transaction=True)
def test_two_cron_sweeps_at_once_send_every_row_once(settings):
    settings.EMAIL_BACKEND = "notifications.tests.backends.SlowRecordingBackend"
    settings.NOTIFICATIONS_OUTBOX_PENDING_GRACE_SECONDS = 0
    backends.SENT.clear()
    for n in range(3):
        services.email_enqueue(to=f"dept{n}@host.example", subject=f"Mail {n}", body_text="x")
    _results, errors = run_concurrently(call_command, [("send_outbox",)] * 2)
    assert not errors
    assert sorted(m.to[0] for m in backends.SENT) == [f"dept{n}@host.example" for n in range(3)]
    assert set(EmailOutbox.objects.values_list("status", flat=True)) == {Status.SENT}


@pytest.mark.django_db
def test_sweeper_recovers_rows_a_dead_worker_left_in_sending(customer, settings):
    settings.NOTIFICATIONS_EMAIL_MAX_ATTEMPTS = 3
    live, lost, exhausted = (make_email(customer) for _ in range(3))
    now = timezone.now()
    EmailOutbox.objects.filter(pk=live.pk).update(status=Status.SENDING, claimed_at=now - timedelta(minutes=1), attempts=1)
    EmailOutbox.objects.filter(pk=lost.pk).update(status=Status.SENDING, claimed_at=now - timedelta(minutes=11), attempts=1)
    EmailOutbox.objects.filter(pk=exhausted.pk).update(status=Status.SENDING, claimed_at=now - timedelta(minutes=11),
                                                       attempts=3)
    due = services.outbox_sweep()
    assert due == [lost.pk]
    statuses = dict(EmailOutbox.objects.values_list("pk", "status"))
    assert statuses == {live.pk: Status.SENDING, lost.pk: Status.PENDING, exhausted.pk: Status.FAILED}
    assert services.email_deliver(email_id=lost.pk).outcome == "sent"


@pytest.mark.django_db
def test_sweeper_leaves_fresh_rows_to_their_own_task(customer):
    row = make_email(customer)
    assert services.outbox_sweep() == []
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.NOTIFICATIONS_OUTBOX_PENDING_GRACE_SECONDS + 1)):
        assert services.outbox_sweep() == [row.pk]


@pytest.mark.django_db
def test_send_outbox_command_sends_due_mail_once(customer):
    row = make_email(customer)
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        call_command("send_outbox")
        call_command("send_outbox")
    assert len(mail.outbox) == 1
    row.refresh_from_db()
    assert row.status == Status.SENT


@pytest.mark.django_db
def test_staff_retry_gives_failed_mail_new_attempts(customer, django_capture_on_commit_callbacks):
    failed, sent = make_email(customer), make_email(customer)
    EmailOutbox.objects.filter(pk=failed.pk).update(status=Status.FAILED, attempts=8, last_error="boom")
    EmailOutbox.objects.filter(pk=sent.pk).update(status=Status.SENT, sent_at=timezone.now(), attempts=1)
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.email_retry(email_ids=[failed.pk, sent.pk]) == 1
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.last_error) == (Status.PENDING, 0, "boom")
    assert len(callbacks) == 1
    assert services.email_deliver(email_id=failed.pk).outcome == "sent"
    assert services.email_deliver(email_id=sent.pk).outcome == "skipped"


# --- broker outage ------------------------------------------------------------------------------

@pytest.fixture
def celery_broker():
    """Point the Celery app at another broker URL (the shared Redis itself is never stopped)."""
    original = celery_app.conf.broker_url, celery_app.conf.task_default_queue

    def point(url: str, queue: str | None = None) -> None:
        celery_app.conf.broker_url = url
        if queue:
            celery_app.conf.task_default_queue = queue
        celery_app._pool = None  # drop connections made to the previous URL
        celery_app.amqp._producer_pool = None
        enqueue._broker_skip_until = 0.0  # forget a failure seen on the previous URL

    yield point
    point(*original)


def run_queued_tasks(queue: str) -> int:
    """Act as a worker for our private queue on the real broker: run each message once, then drop the queue."""
    ran = 0
    with celery_app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            while True:
                try:
                    message = simple.get(block=False)
                except simple.Empty:
                    break
                args, kwargs, _embed = message.decode()
                celery_app.tasks[message.headers["task"]](*args, **kwargs)
                message.ack()
                ran += 1
        finally:
            simple.queue.delete()
            simple.close()
    return ran


@pytest.mark.django_db(transaction=True)
def test_broker_down_notify_commits_and_sweeper_delivers_once_after_it_returns(celery_broker, caplog):
    owner = UserFactory()
    customer = owner.customer
    working_broker = celery_app.conf.broker_url
    celery_broker(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there

    with transaction.atomic():
        notification = services.notify(customer=customer, kind=Kind.SERVICE_SUSPENDED, context={"service": "VPS-9"})
    assert "Could not enqueue notifications.tasks.email_deliver_task" in caplog.text
    row = EmailOutbox.objects.get(notification=notification)
    assert row.status == Status.PENDING and mail.outbox == []

    # Broker back (a private queue on the shared Redis); beat's sweeper runs a few minutes later.
    queue = f"test-notifications-{uuid.uuid4().hex}"
    celery_broker(working_broker, queue)
    with time_machine.travel(timezone.now() + timedelta(minutes=3)):
        assert tasks.outbox_sweep_task() == 1
        assert run_queued_tasks(queue) == 1
        assert tasks.outbox_sweep_task() == 0  # nothing left to sweep
        assert run_queued_tasks(queue) == 0
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [owner.email]
    row.refresh_from_db()
    assert row.status == Status.SENT and row.attempts == 1


def test_enqueue_task_safely_returns_false_instead_of_raising(celery_broker):
    celery_broker(f"redis://127.0.0.1:{free_port()}/0")
    assert enqueue.enqueue_task_safely(tasks.email_deliver_task, email_id=0) is False


@pytest.mark.django_db
def test_after_a_failed_publish_the_process_skips_the_broker_for_a_while(celery_broker, monkeypatch):
    """A request queueing several tasks against a dead or frozen Redis pays the socket timeouts once."""
    working_broker = celery_app.conf.broker_url
    celery_broker(f"redis://127.0.0.1:{free_port()}/0")
    assert enqueue.enqueue_task_safely(tasks.email_deliver_task, email_id=0) is False

    queue = f"test-notifications-{uuid.uuid4().hex}"
    celery_app.conf.broker_url, celery_app.conf.task_default_queue = working_broker, queue
    celery_app._pool = celery_app.amqp._producer_pool = None
    assert enqueue.enqueue_task_safely(tasks.email_deliver_task, email_id=0) is False  # not even tried
    assert run_queued_tasks(queue) == 0

    monkeypatch.setattr(enqueue, "_broker_skip_until", enqueue.time.monotonic() - 1)  # the pause is over
    assert enqueue.enqueue_task_safely(tasks.email_deliver_task, email_id=0) is True
    assert run_queued_tasks(queue) == 1
