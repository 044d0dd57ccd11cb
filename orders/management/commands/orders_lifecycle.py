"""Cron entry point for the order lifecycle: the same code path as the Celery beat task."""
from django.core.management.base import BaseCommand

from orders.services import lifecycle


class Command(BaseCommand):
    help = "Expire, suspend and terminate unpaid services, send expiring-soon notices, cancel stale unpaid orders."

    def handle(self, *args, **options):
        summary = lifecycle.orders_lifecycle_run()
        self.stdout.write(self.style.SUCCESS(f"Order lifecycle: {summary}."))
