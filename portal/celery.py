import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")

app = Celery("portal")
# All CELERY_* settings (serializer, time limits, beat schedule) live in Django settings.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker writes a heartbeat row (/healthz "workers"); beat does so through CELERY_BEAT_SCHEDULER.
from ops.heartbeats import WorkerHeartbeat  # noqa: E402

app.steps["worker"].add(WorkerHeartbeat)
