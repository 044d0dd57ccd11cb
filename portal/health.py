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


def may_see_details(request) -> bool:
    """Error texts name hosts and ports: shown to staff or to a monitor holding HEALTHZ_TOKEN."""
    import hmac

    token = settings.HEALTHZ_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        return bool(request.user.is_authenticated and request.user.is_staff)
    except Exception:  # the session store is the database that may be down: no details then
        return False
