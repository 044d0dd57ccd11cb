"""Cron fallback for the Celery beat sweeper: `manage.py send_outbox` every minute or two.

By default it sends due mail in this process, so mail goes out even while the broker or all
workers are down. `--enqueue` hands the rows to Celery instead.
"""
from django.core.management.base import BaseCommand

from core.enqueue import sweep_drain
from notifications import services
from notifications.tasks import email_deliver_task


class Command(BaseCommand):
    help = "Recover stuck outbox rows and send (or --enqueue) every email that is due."

    def add_arguments(self, parser):
        parser.add_argument("--enqueue", action="store_true", help="queue Celery tasks instead of sending here")

    def handle(self, *args, enqueue: bool = False, **options):
        email_ids = services.outbox_sweep()
        summary = sweep_drain(email_ids, task=email_deliver_task, argument="email_id", enqueue=enqueue,
                              deliver=lambda email_id: services.email_deliver(email_id=email_id).outcome)
        self.stdout.write(f"Outbox: {len(email_ids)} due; {summary}.")
