from datetime import timedelta

from celery import shared_task

from core.enqueue import enqueue_task_safely

from . import deferred, services


@shared_task
def email_deliver_task(*, email_id: int) -> str:
    """Send one outbox row. A failure only sets the row's next_attempt_at (exponential backoff): the
    sweeper queues the retry once it is due. No countdown/ETA tasks: with the short Redis visibility
    timeout (portal/settings/base.py) a task held for later would be redelivered over and over.
    """
    return services.email_deliver(email_id=email_id).outcome


@shared_task
def outbox_sweep_task() -> int:
    """Beat, every minute: store notice batches a batch job left after its commit (its worker died
    before delivering them), then queue delivery of outbox rows that were never picked up or lost their
    worker."""
    deferred.notice_batches_deliver(older_than=timedelta(minutes=1))
    email_ids = services.outbox_sweep()
    for email_id in email_ids:
        enqueue_task_safely(email_deliver_task, email_id=email_id)
    return len(email_ids)


@shared_task
def email_deliver_batch_task(*, email_ids: list[int]) -> int:
    """Send a batch of outbox rows (`notifications.bulk.notify_many` queues one task per batch), each
    exactly as `email_deliver_task` does. Returns how many were sent."""
    return sum(email_deliver_task(email_id=email_id) == "sent" for email_id in email_ids)
