from celery import shared_task

from . import sandbox_provider, services


@shared_task
def sandbox_webhook_deliver(*, outbox_id: int) -> bool:
    return sandbox_provider.webhook_deliver(outbox_id=outbox_id)


@shared_task
def sandbox_webhooks_deliver_due() -> int:
    """Beat sweeper: re-posts sandbox webhooks that were not acknowledged (portal or broker was down)."""
    return sandbox_provider.webhooks_deliver_due()


@shared_task
def autopay_run() -> int:
    return services.autopay_run()
