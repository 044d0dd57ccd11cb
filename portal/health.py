"""Dependency probes for /healthz: each returns None when healthy, else a short error string."""
from django.conf import settings
from django.db import connection


def database_error() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"
        return f"{type(exc).__name__}: {exc}".strip()[:200]
    return None


def broker_error() -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()[:200]
    return None
