from celery import shared_task

from . import renewals, services


@shared_task
def renew_services_task() -> str:
    """Beat, hourly: auto-renew every due order (same code path as `manage.py renew_services`)."""
    summary = renewals.renewals_run()
    renewals.renewals_run_record(summary)
    return str(summary)


@shared_task
def orders_lifecycle_task() -> str:
    """Beat, hourly: expiry, suspension, termination, expiring-soon notices, stale unpaid orders."""
    return str(services.orders_lifecycle_run())
