"""Queue Celery tasks without letting a broker outage reach the user or lose work.

Work that must not be lost is written to the database first (an outbox row, a job row, a pending
export) and a periodic sweeper re-queues what is still waiting, so a failed publish only delays it.
`enqueue_task_on_commit` is the usual call inside a service's transaction: the task is published after
the commit (never for a rolled-back row), and a dead broker is logged, not raised.
"""
import functools
import logging
import time

from django.db import transaction

logger = logging.getLogger(__name__)

# After a failed publish this process skips the broker for a while: a request that queues several
# tasks (or the next requests) must not each wait for the socket timeouts of a dead or frozen Redis.
BROKER_RETRY_AFTER_SECONDS = 30
_broker_skip_until = 0.0


def enqueue_task_safely(task, **kwargs) -> bool:
    """`task.apply_async(kwargs=kwargs)` now; False (logged) instead of an exception when the broker is
    unreachable. Outside a transaction only (sweepers, tasks): inside one use `enqueue_task_on_commit`."""
    global _broker_skip_until
    if time.monotonic() < _broker_skip_until:
        logger.warning("Broker unreachable a moment ago; %s(%s) is left to the periodic sweeper.", task.name, kwargs)
        return False
    try:
        task.apply_async(kwargs=kwargs)
    except Exception:  # kombu/redis raise a zoo of connection errors; none may reach the user.
        _broker_skip_until = time.monotonic() + BROKER_RETRY_AFTER_SECONDS
        logger.warning("Could not enqueue %s(%s); the periodic sweeper will pick it up.", task.name, kwargs,
                       exc_info=True)
        return False
    return True


def enqueue_task_on_commit(task, **kwargs) -> None:
    """Publish `task(**kwargs)` when the current transaction commits (at once outside one), safely."""
    transaction.on_commit(functools.partial(enqueue_task_safely, task, **kwargs))


def sweep_drain(ids: list[int], *, task, argument: str, deliver, enqueue: bool) -> str:
    """A cron fallback for a sweeper: run `deliver(id)` (which returns an outcome name) for each due row in
    this process, so work goes out while the broker or every worker is down, or with `enqueue` publish `task`
    for each (`argument=id`). Returns "outcome: count, …" or "nothing due"."""
    outcomes: dict[str, int] = {}
    for row_id in ids:
        if enqueue:
            outcome = "queued" if enqueue_task_safely(task, **{argument: row_id}) else "not queued"
        else:
            outcome = deliver(row_id)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return ", ".join(f"{name}: {count}" for name, count in sorted(outcomes.items())) or "nothing due"
