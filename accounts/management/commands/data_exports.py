from django.core.management.base import BaseCommand

from accounts import services


class Command(BaseCommand):
    help = "Build pending personal-data exports and delete expired ones (cron alternative to the beat job)."

    def handle(self, *args, **options):
        result = services.data_exports_sweep()
        self.stdout.write(f"built {result['built']}, expired {result['expired']}")
