"""Cron fallback for the beat sweeper: sends due bot messages in this process (or --enqueue to Celery) and
deletes webhook updates past their retention."""
from django.core.management.base import BaseCommand

from core.enqueue import enqueue_task_safely
from notifications.telegram import services
from notifications.telegram.tasks import telegram_deliver_task


class Command(BaseCommand):
    help = "Recover stuck Telegram outbox rows and send (or --enqueue) every message that is due."

    def add_arguments(self, parser):
        parser.add_argument("--enqueue", action="store_true", help="queue Celery tasks instead of sending here")

    def handle(self, *args, enqueue: bool = False, **options):
        pruned = services.telegram_updates_prune()
        outbox_ids = services.telegram_outbox_sweep()
        outcomes: dict[str, int] = {}
        for outbox_id in outbox_ids:
            if enqueue:
                outcome = "queued" if enqueue_task_safely(telegram_deliver_task, outbox_id=outbox_id) else "not queued"
            else:
                outcome = services.telegram_deliver(outbox_id=outbox_id).outcome
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        summary = ", ".join(f"{name}: {count}" for name, count in sorted(outcomes.items())) or "nothing due"
        self.stdout.write(f"Telegram outbox: {len(outbox_ids)} due; {summary}. Old webhook updates deleted: {pruned}.")
