from django.db import transaction
from django.utils import timezone

from .models import Heartbeat


def heartbeat_record(*, name: str, ok: bool | None = None, detail: str = "") -> Heartbeat:
    """Upsert the named heartbeat to now (one row per name; concurrent writers just overwrite)."""
    with transaction.atomic():
        heartbeat, _ = Heartbeat.objects.update_or_create(
            name=name[:200], defaults={"seen_at": timezone.now(), "ok": ok, "detail": detail[:500]})
    return heartbeat
