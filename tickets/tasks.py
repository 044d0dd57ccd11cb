from celery import shared_task

from . import services


@shared_task(name="tickets.tasks.tickets_autoclose_sweep")
def tickets_autoclose_sweep() -> dict[str, int]:
    """Hourly: warn about, then close, tickets left "answered" too long (idempotent per ticket)."""
    return services.tickets_autoclose_sweep()
