"""Beat and every Celery worker write a heartbeat row every OPS_HEARTBEAT_INTERVAL seconds, so any
web host's /healthz can tell a dead beat or worker from a live one (portal.health)."""
import logging
import time
from datetime import timedelta

from celery import bootsteps
from celery.beat import PersistentScheduler
from django.conf import settings
from django.db import close_old_connections

WORKER_PREFIX = "worker:"

logger = logging.getLogger(__name__)
BEAT = "beat"


WORKER_FORGET_AFTER = timedelta(days=7)


def _prune_workers() -> None:
    from django.utils import timezone

    from .services import heartbeats_prune

    try:
        heartbeats_prune(prefix=WORKER_PREFIX, older_than=timezone.now() - WORKER_FORGET_AFTER)
    except Exception:
        logger.warning("old worker heartbeats not pruned", exc_info=True)


def _record(name: str) -> None:
    from .services import heartbeat_record

    # A heartbeat must never take its process down: a database blip is reported by /healthz anyway.
    try:
        close_old_connections()
        heartbeat_record(name=name)
    except Exception:
        logger.warning("heartbeat %s not recorded", name, exc_info=True)


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Worker bootstep: a repeating timer in the worker's main process writes `worker:<hostname>`."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.timer_ref = None

    def start(self, worker):
        name = WORKER_PREFIX + worker.hostname
        _record(name)
        _prune_workers()
        self.timer_ref = worker.timer.call_repeatedly(settings.OPS_HEARTBEAT_INTERVAL, _record, (name,))

    def stop(self, worker):
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None


class HeartbeatScheduler(PersistentScheduler):
    """Beat's scheduler (CELERY_BEAT_SCHEDULER), writing the `beat` heartbeat as it ticks."""

    _last_heartbeat = float("-inf")

    def tick(self, *args, **kwargs):
        interval = settings.OPS_HEARTBEAT_INTERVAL
        now = time.monotonic()
        if now - self._last_heartbeat >= interval:
            self._last_heartbeat = now
            _record(BEAT)
        # Wake up at least once per interval even when the next job is hours away.
        return min(super().tick(*args, **kwargs), interval)
