"""Cron entry point for auto-renewal: the same code path as the Celery beat task."""
from django.core.management.base import BaseCommand

from orders.services import renewal_batch


class Command(BaseCommand):
    help = "Renew every order due for auto-renewal (safe to run concurrently and to re-run)."

    def add_arguments(self, parser):
        parser.add_argument("--chunk-size", type=int, default=None, help="Orders per transaction.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (e.g. in cron logs).")

    def handle(self, *args, chunk_size=None, no_progress=False, **options):
        from django.utils import timezone

        now = timezone.now()
        total = renewal_batch.due_for_auto_renewal(now).count()
        self.stdout.write(f"{total} order(s) due for auto-renewal.")
        show = not no_progress and total > 0

        def progress(summary):
            done = min(summary.claimed, total)
            width = 30
            filled = int(width * done / total) if total else width
            self.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
            self.stdout.flush()

        summary = renewal_batch.renewals_run(now=now, chunk_size=chunk_size, progress=progress if show else None)
        renewal_batch.renewals_run_record(summary)
        if show:
            self.stdout.write("")
        style = self.style.SUCCESS if not summary.errors else self.style.WARNING
        self.stdout.write(style(f"Auto-renewal: {summary}."))
        if summary.errors:
            self.stdout.write(f"Orders with errors (see the log): {', '.join(map(str, summary.error_orders[:50]))}")
