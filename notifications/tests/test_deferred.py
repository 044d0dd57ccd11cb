"""Notice batches (notifications.deferred): stored after the writer's commit, exactly once, never lost."""
import io
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction

from accounts.tests.factories import CustomerFactory
from billing.tests.concurrency import run_concurrently
from notifications.bulk import Notice
from notifications.deferred import notice_batches_deliver, notices_defer
from notifications.kinds import Kind
from notifications.models import EmailOutbox, NoticeBatch, Notification
from notifications.services import customer_notifications_erase
from notifications.tasks import outbox_sweep_task

WHEN = datetime(2027, 2, 28, 23, 59, 30, tzinfo=dt_timezone.utc)


def issued(customer, n: int, dedupe: bool = True) -> Notice:
    return Notice(customer=customer, link=f"/billing/invoices/{n}/", dedupe_key=f"invoice:{n}:issued" if dedupe else None,
                  context={"invoice_number": f"2027-{n:06d}", "amount": "€10.00", "kind": "renewal", "invoice_id": n})


@pytest.mark.django_db
def test_a_batch_becomes_notifications_and_emails_once_delivered_and_only_once(customer):
    with transaction.atomic():
        notices_defer(kind=Kind.INVOICE_ISSUED, notices=[issued(customer, 1), issued(customer, 2)])
        assert not Notification.objects.exists()  # nothing rendered or stored in the writer's transaction
    assert notice_batches_deliver() == 2
    notifications = Notification.objects.filter(customer=customer, kind="invoice_issued").order_by("pk")
    assert [n.context["invoice_number"] for n in notifications] == ["2027-000001", "2027-000002"]
    assert "2027-000001" in notifications[0].subject
    assert EmailOutbox.objects.filter(notification__in=notifications).count() == 2
    assert not NoticeBatch.objects.exists()
    assert notice_batches_deliver() == 0 and Notification.objects.count() == 2


@pytest.mark.django_db
def test_a_bad_notice_fails_the_writers_transaction_not_the_delivery(customer):
    with pytest.raises(Exception):
        notices_defer(kind=Kind.INVOICE_ISSUED, notices=[Notice(customer=customer, context={}, link="https://evil.example/")])
    with pytest.raises(ValueError):
        notices_defer(kind="no_such_kind", notices=[issued(customer, 1)])
    assert not NoticeBatch.objects.exists()


@pytest.mark.django_db
def test_the_sweeper_delivers_a_batch_its_worker_left_after_a_minute_not_before(customer):
    with time_machine.travel(WHEN, tick=False):
        notices_defer(kind=Kind.INVOICE_ISSUED, notices=[issued(customer, 7)])
    with time_machine.travel(WHEN + timedelta(seconds=30), tick=False):  # its worker may still be delivering it
        outbox_sweep_task()
        assert not Notification.objects.exists()
    with time_machine.travel(WHEN + timedelta(seconds=61), tick=False):  # across the month end
        outbox_sweep_task()
        assert Notification.objects.get().context["invoice_number"] == "2027-000007"
    assert not NoticeBatch.objects.exists()


@pytest.mark.django_db
def test_a_batch_that_fails_is_left_for_the_sweeper_and_does_not_hold_back_the_others(customer, monkeypatch, caplog):
    from notifications import deferred

    notices_defer(kind=Kind.INVOICE_ISSUED, notices=[issued(customer, 1)])
    notices_defer(kind=Kind.SERVICE_RENEWED, notices=[Notice(customer=customer, link="/orders/1/", context={})])
    stored = deferred.notify_many

    def broken_for_issued(*, kind, notices):
        if kind == Kind.INVOICE_ISSUED:
            raise RuntimeError("template broken")
        return stored(kind=kind, notices=notices)

    monkeypatch.setattr(deferred, "notify_many", broken_for_issued)
    assert notice_batches_deliver() == 1  # returns: the failed batch is not retried in this call
    assert list(Notification.objects.values_list("kind", flat=True)) == ["service_renewed"]
    assert list(NoticeBatch.objects.values_list("kind", "attempts", "last_error")) == [
        ("invoice_issued", 1, "RuntimeError: template broken")]
    assert "could not be stored" in caplog.text
    monkeypatch.setattr(deferred, "notify_many", stored)
    assert notice_batches_deliver() == 1 and not NoticeBatch.objects.exists()


@pytest.mark.django_db
def test_a_batch_failing_max_attempts_times_waits_for_staff_and_shows_in_the_backlog(customer, monkeypatch, admin_client):
    from notifications import deferred
    from portal.backlog import outbox_backlogs

    with time_machine.travel(WHEN, tick=False):
        notices_defer(kind=Kind.INVOICE_ISSUED, notices=[issued(customer, 3)])
    stored = deferred.notify_many
    monkeypatch.setattr(deferred, "notify_many", lambda **kwargs: 1 / 0)
    for _minute in range(deferred.MAX_ATTEMPTS + 2):  # the sweeper's tries, and two more
        notice_batches_deliver()
    assert NoticeBatch.objects.get().attempts == deferred.MAX_ATTEMPTS  # stopped retrying
    monkeypatch.setattr(deferred, "notify_many", stored)
    assert notice_batches_deliver() == 0 and NoticeBatch.objects.exists()  # mended, but waits for staff
    [notices] = [b for b in outbox_backlogs() if b.outbox == "notices"]
    assert (notices.waiting, notices.oldest_due) == (1, WHEN)
    batch = NoticeBatch.objects.get()
    page = admin_client.get("/admin/notifications/noticebatch/")
    assert page.status_code == 200 and "ZeroDivisionError" in page.content.decode()
    admin_client.post("/admin/notifications/noticebatch/", {"action": "retry", "_selected_action": [batch.pk]})
    assert NoticeBatch.objects.get().attempts == 0
    assert notice_batches_deliver() == 1 and not NoticeBatch.objects.exists()


@pytest.mark.django_db
def test_the_cron_fallback_stores_a_left_batch_too(customer):
    with time_machine.travel(WHEN, tick=False):
        notices_defer(kind=Kind.INVOICE_ISSUED, notices=[issued(customer, 8)])
    with time_machine.travel(WHEN + timedelta(minutes=2), tick=False):
        call_command("send_outbox", stdout=io.StringIO())
    assert Notification.objects.get().context["invoice_number"] == "2027-000008"
    assert not NoticeBatch.objects.exists()


@pytest.mark.django_db
def test_account_erasure_drops_the_customers_notices_still_waiting_in_a_batch(customer):
    other = CustomerFactory()
    notices_defer(kind=Kind.INVOICE_ISSUED, notices=[issued(customer, 1), issued(other, 2)])
    customer_notifications_erase(customer=customer)
    notice_batches_deliver()
    assert list(Notification.objects.values_list("customer_id", flat=True)) == [other.pk]


@pytest.mark.django_db
def test_a_deleted_account_gets_nothing_and_does_not_stop_the_batch(customer):
    other = CustomerFactory()
    notices_defer(kind=Kind.INVOICE_ISSUED, notices=[issued(other, 1), issued(customer, 2)])
    other.delete()
    assert notice_batches_deliver() == 1
    assert Notification.objects.get().customer_id == customer.pk


@pytest.mark.django_db(transaction=True)
def test_two_processes_delivering_at_once_store_each_batch_once(customer):
    # No dedupe keys: only the batch lock keeps a second delivery out.
    for n in range(6):
        notices_defer(kind=Kind.INVOICE_ISSUED, notices=[issued(customer, n, dedupe=False)])
    created, errors = run_concurrently(notice_batches_deliver, [(), ()])
    assert errors == []
    assert sum(created) == 6 and Notification.objects.count() == 6
    assert not NoticeBatch.objects.exists()
