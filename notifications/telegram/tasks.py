from celery import shared_task

from core.enqueue import enqueue_task_safely

from . import services


@shared_task
def telegram_deliver_task(*, outbox_id: int) -> str:
    """Send one bot message; a failure sets the row's next attempt time and the sweeper retries it
    (no countdown tasks, see notifications.tasks.email_deliver_task)."""
    return services.telegram_deliver(outbox_id=outbox_id).outcome


@shared_task
def telegram_outbox_sweep_task() -> int:
    """Beat, every minute: queue bot messages that were never picked up or lost their worker, and
    delete webhook updates past their retention."""
    services.telegram_updates_prune()
    outbox_ids = services.telegram_outbox_sweep()
    for outbox_id in outbox_ids:
        enqueue_task_safely(telegram_deliver_task, outbox_id=outbox_id)
    return len(outbox_ids)
