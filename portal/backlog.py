"""Reads for /healthz and /metrics: what is waiting to be delivered, and how long it has waited."""
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone

from billing.gateways.models import SandboxWebhookOutbox
from notifications.models import EmailOutbox, NoticeBatch
from notifications.telegram.models import TelegramOutbox
from orders.models import Order


@dataclass(frozen=True)
class Backlog:
    outbox: str
    waiting: int  # undelivered rows, due or not
    oldest_due: datetime | None  # the earliest due time among rows already due


def outbox_backlogs(*, now: datetime | None = None) -> list[Backlog]:
    """One row per outbox: email, Telegram, sandbox webhooks, notices a renewal run left to store (due at
    once), provisioning (paid orders not yet set up)."""
    now = now or timezone.now()
    backlogs = []
    for name, model in (("email", EmailOutbox), ("telegram", TelegramOutbox)):
        row = model.objects.filter(status__in=["pending", "sending"]).aggregate(
            waiting=Count("pk"), oldest_due=Min("next_attempt_at", filter=Q(next_attempt_at__lte=now)))
        backlogs.append(Backlog(name, row["waiting"], row["oldest_due"]))
    row = SandboxWebhookOutbox.objects.filter(delivered_at__isnull=True).aggregate(
        waiting=Count("pk"), oldest_due=Min("deliver_after", filter=Q(deliver_after__lte=now)))
    backlogs.append(Backlog("webhooks", row["waiting"], row["oldest_due"]))
    row = NoticeBatch.objects.aggregate(waiting=Count("pk"), oldest_due=Min("created_at"))
    backlogs.append(Backlog("notices", row["waiting"], row["oldest_due"]))
    row = Order.objects.filter(
        paid_at__isnull=False, provisioning__in=[Order.Provisioning.NOT_STARTED, Order.Provisioning.WAITING_STAFF],
        status__in=[Order.Status.PENDING, Order.Status.ACTIVE],
    ).aggregate(waiting=Count("pk"), oldest_due=Min("paid_at"))
    backlogs.append(Backlog("provisioning", row["waiting"], row["oldest_due"]))
    return backlogs


# Machine-delivered outboxes: a row waiting long there means a sweeper or worker is not doing its job.
# (Provisioning may wait for staff by design, so it is a metric, not a health check.)
DELIVERED_BY_WORKERS = ("email", "telegram", "webhooks", "notices")


def celery_queue_names() -> list[str]:
    """The default queue plus every queue named in CELERY_TASK_ROUTES."""
    names = {getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")}
    for route in (getattr(settings, "CELERY_TASK_ROUTES", None) or {}).values():
        if isinstance(route, dict) and route.get("queue"):
            names.add(route["queue"])
    return sorted(names)


def celery_queue_depths() -> dict[str, int]:
    """Messages waiting in each Redis queue (raises on a broker error: callers report it)."""
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)
    return {name: int(client.llen(name)) for name in celery_queue_names()}
