from celery import shared_task

from . import sandbox_provider, services


@shared_task
def sandbox_webhooks_deliver_due() -> int:
    """Beat sweeper: posts sandbox webhooks whose time has come — delayed events ("pending, then
    success") and retries of ones the portal did not acknowledge."""
    return sandbox_provider.webhooks_deliver_due()


@shared_task
def card_auto_top_ups_run() -> int:
    return services.card_auto_top_ups_run()
