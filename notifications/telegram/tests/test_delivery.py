from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ActivityEvent
from accounts.tests.factories import UserFactory
from billing.tests.concurrency import run_concurrently
from notifications.kinds import Kind
from notifications.services import notify
from notifications.telegram import services
from notifications.telegram.models import TelegramLink, TelegramOutbox
from portal.celery import app as celery_app
from core.tests.net import free_port

from .conftest import BOT_TOKEN
from .factories import link_chat

Status = TelegramOutbox.Status
REPLY_CONTEXT = {"ticket_id": 10042, "ticket_subject": "Disk full", "author": "Maria", "excerpt": "Cleaned up.",
                 "category": "support"}


def ticket_reply(customer):
    return notify(customer=customer, kind=Kind.TICKET_REPLY, context=REPLY_CONTEXT, link="/tickets/10042/")


@pytest.mark.django_db
def test_notify_goes_to_each_linked_chat_that_chose_the_kind(owner, bot_api):
    technical = UserFactory(customer=owner.customer, role="technical")
    finance = UserFactory(customer=owner.customer, role="finance")
    link_chat(owner, chat_id=1)
    link_chat(technical, chat_id=2)
    link_chat(finance, chat_id=3, kinds=[Kind.TICKET_REPLY])  # stale choice: finance does not see tickets
    link_chat(UserFactory(), chat_id=4)  # another customer
    notification = ticket_reply(owner.customer)
    rows = TelegramOutbox.objects.filter(notification=notification)
    assert sorted(rows.values_list("chat_id", flat=True)) == [1, 2]
    assert {row.reference for row in rows} == {"ticket:10042"}

    notify(customer=owner.customer, kind=Kind.PAYMENT_RECEIVED, context={"amount": "€5.00"})  # not chosen by default
    assert TelegramOutbox.objects.count() == 2


@pytest.mark.django_db
def test_message_text_is_in_the_customers_language_with_an_absolute_link(owner, bot_api, settings):
    owner.customer.language = "ru"
    owner.customer.save()
    link_chat(owner, chat_id=1)
    ticket_reply(owner.customer)
    text = TelegramOutbox.objects.get().text
    assert "10042" in text and "Cleaned up." in text
    assert settings.PORTAL_BASE_URL + "/tickets/10042/" in text
    assert "Ответьте на это сообщение" in text


@pytest.mark.django_db
def test_nothing_is_written_or_read_while_telegram_is_unconfigured(owner, settings):
    link_chat(owner, chat_id=1)
    settings.TELEGRAM_BOT_TOKEN = ""
    with CaptureQueriesContext(connection) as queries:
        ticket_reply(owner.customer)
    assert not [query for query in queries.captured_queries if "telegram_" in query["sql"]]
    assert not TelegramOutbox.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_delivery_is_exactly_once_with_two_concurrent_workers(bot_api):
    owner = UserFactory()
    link_chat(owner, chat_id=1)
    ticket_reply(owner.customer)
    row = TelegramOutbox.objects.get()
    outcomes, errors = run_concurrently(lambda: services.telegram_deliver(outbox_id=row.pk).outcome, [(), ()])
    assert not errors
    assert sorted(outcomes) == ["sent", "skipped"]
    assert len(bot_api.sent()) == 1
    row.refresh_from_db()
    assert row.status == Status.SENT and row.attempts == 1 and row.message_id
    assert services.telegram_deliver(outbox_id=row.pk).outcome == "skipped"


@pytest.mark.django_db
def test_failures_back_off_and_permanent_errors_stop(owner, bot_api):
    link_chat(owner, chat_id=1)
    ticket_reply(owner.customer)
    row = TelegramOutbox.objects.get()
    bot_api.failures = [
        (500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}),
        (429, {"ok": False, "error_code": 429, "description": "Too Many Requests", "parameters": {"retry_after": 300}}),
        (403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
    ]
    result = services.telegram_deliver(outbox_id=row.pk)
    assert (result.outcome, result.retry_in) == ("retry", 60)
    row.refresh_from_db()
    assert row.status == Status.PENDING and row.next_attempt_at > timezone.now()
    assert services.telegram_deliver(outbox_id=row.pk).outcome == "skipped"  # not due yet
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        assert services.telegram_deliver(outbox_id=row.pk).retry_in == 300  # Telegram's retry_after wins
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        assert services.telegram_deliver(outbox_id=row.pk).outcome == "failed"
    row.refresh_from_db()
    assert row.status == Status.FAILED and "blocked" in row.last_error and row.attempts == 3
    assert not TelegramLink.objects.exists()  # blocked: the chat is unlinked, nothing more is written there
    assert ActivityEvent.objects.filter(action="telegram_unlinked", details__reason="bot_blocked").count() == 1
    ticket_reply(owner.customer)
    assert TelegramOutbox.objects.count() == 1

    assert services.telegram_retry(outbox_ids=[row.pk]) == 1
    assert services.telegram_deliver(outbox_id=row.pk).outcome == "sent"


@pytest.mark.django_db
def test_network_errors_never_leak_the_bot_token(owner, bot_api, settings):
    link_chat(owner, chat_id=1)
    ticket_reply(owner.customer)
    settings.TELEGRAM_API_BASE = f"http://127.0.0.1:{free_port()}"
    assert services.telegram_deliver(outbox_id=TelegramOutbox.objects.get().pk).outcome == "retry"
    row = TelegramOutbox.objects.get()
    assert "ConnectionError" in row.last_error and BOT_TOKEN not in row.last_error


@pytest.mark.django_db
def test_sweeper_command_recovers_stuck_rows_and_sends_due_ones(owner, bot_api):
    link_chat(owner, chat_id=1)
    ticket_reply(owner.customer)
    ticket_reply(owner.customer)
    stuck, waiting = TelegramOutbox.objects.order_by("pk")
    TelegramOutbox.objects.filter(pk=stuck.pk).update(status=Status.SENDING, claimed_at=timezone.now(), attempts=1)
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        call_command("send_telegram_outbox", stdout=open("/dev/null", "w"))
    assert set(TelegramOutbox.objects.values_list("status", flat=True)) == {Status.SENT}
    assert len(bot_api.sent()) == 2


# --- broker outage ------------------------------------------------------------------------------

@pytest.fixture
def celery_broker():
    """Point the Celery app at another broker URL (the shared Redis itself is never stopped)."""
    original = celery_app.conf.broker_url

    def point(url: str) -> None:
        celery_app.conf.broker_url = url
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    yield point
    point(original)


@pytest.mark.django_db(transaction=True)
def test_broker_down_enqueue_does_not_raise_and_the_sweeper_sends_later(celery_broker, bot_api, caplog):
    owner = UserFactory()
    link_chat(owner, chat_id=1)
    celery_broker(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    with transaction.atomic():
        ticket_reply(owner.customer)
    assert "Could not enqueue notifications.telegram.tasks.telegram_deliver_task" in caplog.text
    row = TelegramOutbox.objects.get()
    assert row.status == Status.PENDING and bot_api.sent() == []

    with time_machine.travel(timezone.now() + timedelta(minutes=3)):
        call_command("send_telegram_outbox", stdout=open("/dev/null", "w"))
        call_command("send_telegram_outbox", stdout=open("/dev/null", "w"))
    assert len(bot_api.sent()) == 1
    row.refresh_from_db()
    assert row.status == Status.SENT


@pytest.mark.django_db
def test_delivery_is_queued_after_commit(owner, bot_api, queued_tasks, django_capture_on_commit_callbacks):
    link_chat(owner, chat_id=1)
    with django_capture_on_commit_callbacks(execute=True):
        ticket_reply(owner.customer)
    assert queued_tasks == [{"kwargs": {"outbox_id": TelegramOutbox.objects.get().pk}}]


@pytest.mark.django_db
def test_notify_many_reaches_the_same_chats_as_notify_with_one_query_for_the_links(owner, bot_api):
    from notifications.bulk import Notice, notify_many

    technical = UserFactory(customer=owner.customer, role="technical")
    link_chat(owner, chat_id=1)
    link_chat(technical, chat_id=2)
    others = [UserFactory().customer for _ in range(3)]  # no chat linked: no notification built for them
    notices = [Notice(customer=customer, context=REPLY_CONTEXT, link="/tickets/10042/")
               for customer in [owner.customer, *others]]
    with CaptureQueriesContext(connection) as queries:
        assert notify_many(kind=Kind.TICKET_REPLY, notices=notices) == 4
    # One for the batch (who has a chat for the kind), one for the only customer who has.
    assert len([query for query in queries.captured_queries if "telegram_telegramlink" in query["sql"]]) == 2
    bulk_rows = TelegramOutbox.objects.filter(notification_id=notices[0].notification_id)
    single_rows = TelegramOutbox.objects.filter(notification=ticket_reply(owner.customer))
    assert sorted(bulk_rows.values_list("chat_id", "text", "reference")) == sorted(
        single_rows.values_list("chat_id", "text", "reference"))
    assert bulk_rows.count() == 2 and TelegramOutbox.objects.count() == 4
