from django.db import transaction
from django.utils import timezone

from .models import Heartbeat


def heartbeat_record(*, name: str, ok: bool | None = None, detail: str = "") -> None:
    """Upsert the named heartbeat to now: one INSERT … ON CONFLICT statement, so concurrent writers
    (several workers, two renewal runs) never collide; the last one wins."""
    with transaction.atomic():
        Heartbeat.objects.bulk_create(
            [Heartbeat(name=name[:200], seen_at=timezone.now(), ok=ok, detail=detail[:500])],
            update_conflicts=True, unique_fields=["name"], update_fields=["seen_at", "ok", "detail"])


def heartbeats_prune(*, prefix: str, older_than) -> int:
    """Forget processes gone for good (a container's hostname changes at every restart)."""
    with transaction.atomic():
        deleted, _ = Heartbeat.objects.filter(name__startswith=prefix, seen_at__lt=older_than).delete()
    return deleted
