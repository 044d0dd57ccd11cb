from celery import shared_task

from core.enqueue import enqueue_task_safely

from .services import lifecycle, renewal_batch


@shared_task
def renew_services_task() -> str:
    """Beat, hourly: auto-renew every due order (same code path as `manage.py renew_services`)."""
    summary = renewal_batch.renewals_run()
    renewal_batch.renewals_run_record(summary)
    return str(summary)


@shared_task
def orders_lifecycle_task() -> str:
    """Beat, hourly: expiry, suspension, termination, expiring-soon notices, stale unpaid orders."""
    return str(lifecycle.orders_lifecycle_run())


@shared_task
def provisioning_job_task(*, job_id: int) -> str:
    """Run one provisioning job (a module call). A failure only sets the row's next attempt: the
    sweeper queues the retry when due (no countdown/ETA tasks, see CELERY_TASK_ACKS_LATE)."""
    from .provisioning import jobs

    return jobs.job_run(job_id=job_id)


@shared_task
def provisioning_jobs_sweep_task() -> int:
    """Beat, every 30 s: requeue jobs whose worker died, queue jobs due (retries, lost enqueues)."""
    from .provisioning import jobs

    job_ids = jobs.jobs_sweep()
    for job_id in job_ids:
        enqueue_task_safely(provisioning_job_task, job_id=job_id)
    return len(job_ids)


@shared_task
def usage_sample_task() -> int:
    """Sample every running VM's counters (graphs, traffic), thin samples older than a day, then apply
    the traffic quota (a notice once per period, the plan's throttle, lifting it in a new period)."""
    from .traffic_quota import traffic_quota_check_all
    from .usage import usage_sample_all

    taken = usage_sample_all()
    traffic_quota_check_all()
    return taken


@shared_task
def console_tokens_purge_task() -> int:
    """Delete console tokens expired for more than a day."""
    from .console import console_tokens_purge

    return console_tokens_purge()
