"""Cron fallback for the Celery beat sweeper: `manage.py send_outbox` every minute or two.

First it stores the notice batches a batch job's dead worker left (`deferred`, as the beat sweeper
does). By default it then sends due mail in this process, so mail goes out even while the broker or all
workers are down. `--enqueue` hands the rows to Celery instead.
"""
from datetime import timedelta

from django.core.management.base import BaseCommand

from core.enqueue import sweep_drain
from notifications import deferred, services
from notifications.tasks import email_deliver_task


class Command(BaseCommand):
    help = "Recover stuck outbox rows and send (or --enqueue) every email that is due."

    def add_arguments(self, parser):
        parser.add_argument("--enqueue", action="store_true", help="queue Celery tasks instead of sending here")

    def handle(self, *args, enqueue: bool = False, **options):
        notices = deferred.notice_batches_deliver(older_than=timedelta(minutes=1))
        email_ids = services.outbox_sweep()
        summary = sweep_drain(email_ids, task=email_deliver_task, argument="email_id", enqueue=enqueue,
                              deliver=lambda email_id: services.email_deliver(email_id=email_id).outcome)
        self.stdout.write(f"Notices left by batch jobs: {notices} stored. Outbox: {len(email_ids)} due; {summary}.")
