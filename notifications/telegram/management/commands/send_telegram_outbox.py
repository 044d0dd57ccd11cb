"""Cron fallback for the beat sweeper: sends due bot messages in this process (or --enqueue to Celery) and
deletes webhook updates past their retention."""
from django.core.management.base import BaseCommand

from core.enqueue import sweep_drain
from notifications.telegram import services
from notifications.telegram.tasks import telegram_deliver_task


class Command(BaseCommand):
    help = "Recover stuck Telegram outbox rows and send (or --enqueue) every message that is due."

    def add_arguments(self, parser):
        parser.add_argument("--enqueue", action="store_true", help="queue Celery tasks instead of sending here")

    def handle(self, *args, enqueue: bool = False, **options):
        pruned = services.telegram_updates_prune()
        outbox_ids = services.telegram_outbox_sweep()
        summary = sweep_drain(outbox_ids, task=telegram_deliver_task, argument="outbox_id", enqueue=enqueue,
                              deliver=lambda outbox_id: services.telegram_deliver(outbox_id=outbox_id).outcome)
        self.stdout.write(f"Telegram outbox: {len(outbox_ids)} due; {summary}. Old webhook updates deleted: {pruned}.")
