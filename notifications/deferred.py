"""Notices stored after the transaction that causes them, without being lost.

A batch job's transaction can be the serial part of the work: auto-renewal holds the invoice-number
counter from its number block until COMMIT, so every statement in it runs one worker at a time.
`notices_defer()` writes the chunk's notices as one `NoticeBatch` row in that transaction (one
INSERT instead of rendering and inserting a notification and its emails per notice);
`notice_batches_deliver()` turns committed batches into notifications with `bulk.notify_many` — the
same rows, dedupe and emails — in a transaction that also deletes the batches it stored, so a batch is
delivered exactly once. The job calls it after each chunk; the beat sweeper
(`tasks.outbox_sweep_task`) delivers what a worker that died after its commit left. A batch that
fails MAX_ATTEMPTS times (a broken template, say) stops being retried and waits for staff: it shows in
admin with its error, and in /metrics' and /healthz's backlog.
"""
import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Customer

from .bulk import Notice, notices_check, notify_many
from .models import NoticeBatch

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 10  # the sweeper's minutes of retries before a failing batch waits for staff


def notices_defer(*, kind: str, notices: list[Notice]) -> int | None:
    """Store `notices` (all of `kind`) for delivery after the caller's transaction commits; the id of
    the batch row, None when there is nothing to store. Checks what `notify_many` checks
    (`notices_check`) now, so a bad notice fails the caller's transaction instead of the delivery."""
    if not notices:
        return None
    kind, _contexts = notices_check(kind=kind, notices=notices)
    payload = [{"customer_id": notice.customer.pk, "context": notice.context, "link": notice.link,
                "dedupe_key": notice.dedupe_key} for notice in notices]
    return NoticeBatch.objects.create(kind=kind, notices=payload).pk


def notice_batches_deliver(*, older_than: timedelta | None = None, per_transaction: int = 10) -> int:
    """Store every committed notice batch (those at least `older_than` old, if given) as notifications,
    oldest first, up to `per_transaction` batches per transaction (a renewal chunk leaves two); a batch
    another process is delivering is skipped. A batch that fails is logged and left for the sweeper's
    next try, and never holds back the others (nor the renewal run that calls this). Returns how many
    notifications were created (deduplicated ones are not counted)."""
    created, failed = 0, set()
    while True:
        with transaction.atomic():
            pending = (NoticeBatch.objects.select_for_update(skip_locked=True)
                       .filter(attempts__lt=MAX_ATTEMPTS).exclude(pk__in=failed).order_by("pk"))
            if older_than is not None:
                pending = pending.filter(created_at__lte=timezone.now() - older_than)
            batches = list(pending[:per_transaction])
            if not batches:
                return created
            customers = Customer.objects.in_bulk({notice["customer_id"] for batch in batches for notice in batch.notices})
            delivered = []
            for batch in batches:
                try:
                    with transaction.atomic():
                        created += _deliver(batch, customers)
                    delivered.append(batch.pk)
                except Exception as error:  # a broken template or notice must not stop the job; the sweeper retries it
                    logger.exception("Notice batch %s (%s) could not be stored", batch.pk, batch.kind)
                    failed.add(batch.pk)
                    NoticeBatch.objects.filter(pk=batch.pk).update(
                        attempts=F("attempts") + 1, last_error=f"{type(error).__name__}: {error}"[:2000])
            NoticeBatch.objects.filter(pk__in=delivered).delete()


def _deliver(batch: NoticeBatch, customers: dict[int, Customer]) -> int:
    return notify_many(kind=batch.kind, notices=[
        Notice(customer=customers[notice["customer_id"]], context=notice["context"], link=notice["link"],
               dedupe_key=notice["dedupe_key"])
        for notice in batch.notices if notice["customer_id"] in customers  # a deleted account gets nothing
    ])


def notice_batches_retry(*, batch_ids: list[int]) -> int:
    """Staff's retry of batches that stopped after MAX_ATTEMPTS: the next delivery tries them again.
    Returns how many were waiting."""
    with transaction.atomic():
        return NoticeBatch.objects.filter(pk__in=batch_ids, attempts__gte=MAX_ATTEMPTS).update(attempts=0)
