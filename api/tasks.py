from celery import shared_task

from .idempotency import idempotency_purge


@shared_task
def idempotency_purge_task() -> int:
    return idempotency_purge()


@shared_task
def webhook_deliver_task(delivery_id: int) -> str | None:
    from .webhooks import webhook_deliver

    return webhook_deliver(delivery_id=delivery_id)


@shared_task
def webhooks_sweep_task() -> int:
    from .webhooks import webhooks_sweep

    return webhooks_sweep()
