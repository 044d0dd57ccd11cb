"""Probes for /healthz: each returns None when healthy, else a short error string."""
from django.conf import settings
from django.db import connection
from django.utils import timezone


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:200]


def database_error() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"
        return _describe(exc)
    return None


def broker_error() -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
    except Exception as exc:
        return _describe(exc)
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


def _age_error(seen_at, max_age: int, what: str) -> str | None:
    if seen_at is None:
        return f"no {what} heartbeat yet"
    age = (timezone.now() - seen_at).total_seconds()
    if age > max_age:
        return f"last {what} heartbeat {int(age)} s ago (limit {max_age} s)"
    return None


def beat_error() -> str | None:
    """Beat writes a heartbeat every OPS_HEARTBEAT_INTERVAL seconds (ops.heartbeats.HeartbeatScheduler)."""
    from ops.heartbeats import BEAT
    from ops.selectors import heartbeat_seen_at

    try:
        return _age_error(heartbeat_seen_at(name=BEAT), settings.HEALTHZ_BEAT_MAX_AGE, "beat")
    except Exception as exc:
        return _describe(exc)


def workers_error() -> str | None:
    """Alive when at least one worker wrote its heartbeat recently (ops.heartbeats.WorkerHeartbeat)."""
    from ops.selectors import latest_worker_heartbeat

    try:
        return _age_error(latest_worker_heartbeat(), settings.HEALTHZ_WORKER_MAX_AGE, "worker")
    except Exception as exc:
        return _describe(exc)


def outbox_error() -> str | None:
    """Fails when a due email, Telegram message or webhook has waited longer than HEALTHZ_OUTBOX_MAX_AGE."""
    from .backlog import DELIVERED_BY_WORKERS, outbox_backlogs

    try:
        now = timezone.now()
        late = []
        for backlog in outbox_backlogs(now=now):
            if backlog.outbox in DELIVERED_BY_WORKERS and backlog.oldest_due is not None:
                age = int((now - backlog.oldest_due).total_seconds())
                if age > settings.HEALTHZ_OUTBOX_MAX_AGE:
                    late.append(f"{backlog.outbox} {age} s")
    except Exception as exc:
        return _describe(exc)
    if late:
        return f"oldest due row waiting: {', '.join(late)} (limit {settings.HEALTHZ_OUTBOX_MAX_AGE} s)"
    return None


COMPONENTS = ("database", "broker", "beat", "workers", "outbox")


def component_errors() -> dict[str, str | None]:
    """Every component's probe result. The database-backed probes are skipped (reported as unknown)
    when the database itself is down, so a dead database costs one timeout, not four."""
    results: dict[str, str | None] = {}
    for name in COMPONENTS:
        if name in ("beat", "workers", "outbox") and results.get("database"):
            results[name] = "unknown: database down"
            continue
        results[name] = globals()[f"{name}_error"]()  # looked up per call so tests can replace a probe
    return results
