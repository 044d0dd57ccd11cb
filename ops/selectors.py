from datetime import datetime

from django.db.models import Max

from .heartbeats import WORKER_PREFIX
from .models import Heartbeat


def heartbeat_seen_at(*, name: str) -> datetime | None:
    return Heartbeat.objects.filter(name=name).values_list("seen_at", flat=True).first()


def worker_heartbeats() -> dict[str, datetime]:
    """Every worker that reported in the last week (older ones are pruned), by hostname, with its last heartbeat."""
    rows = Heartbeat.objects.filter(name__startswith=WORKER_PREFIX).values_list("name", "seen_at")
    return {name.removeprefix(WORKER_PREFIX): seen_at for name, seen_at in rows}


def latest_worker_heartbeat() -> datetime | None:
    return Heartbeat.objects.filter(name__startswith=WORKER_PREFIX).aggregate(latest=Max("seen_at"))["latest"]


def heartbeat(*, name: str) -> Heartbeat | None:
    return Heartbeat.objects.filter(name=name).first()
