from django.core.management.base import BaseCommand

from tickets.services import tickets_autoclose_sweep


class Command(BaseCommand):
    help = "Warn about and auto-close tickets left in 'answered' (for cron when Celery beat is not used)."

    def handle(self, *args, **options):
        counts = tickets_autoclose_sweep()
        self.stdout.write(f"Warned: {counts['warned']}, closed: {counts['closed']}")
