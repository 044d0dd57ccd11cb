from django.core.management.base import BaseCommand

from accounts.services.data_export import data_exports_sweep


class Command(BaseCommand):
    help = "Build pending personal-data exports and delete expired ones (cron alternative to the beat job)."

    def handle(self, *args, **options):
        result = data_exports_sweep()
        self.stdout.write(f"built {result['built']}, expired {result['expired']}")
