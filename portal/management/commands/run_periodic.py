"""Run beat's periodic jobs in this process, without a broker: the cron alternative to celery beat.

    manage.py run_periodic --list
    manage.py run_periodic orders-auto-renew orders-lifecycle

Every job is idempotent and claims its rows (SKIP LOCKED, unique keys), so overlapping runs, or the
same crontab on two hosts, do the work once.
"""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the named CELERY_BEAT_SCHEDULE entries in-process (for cron); --list shows them."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="beat entry names, e.g. orders-auto-renew")
        parser.add_argument("--list", action="store_true", help="list the entries with their task and interval")

    def handle(self, *args, names, **options):
        from portal.celery import app

        schedule = settings.CELERY_BEAT_SCHEDULE
        if options["list"] or not names:
            for name, entry in schedule.items():
                self.stdout.write(f"{name:<32} every {int(entry['schedule']):>6} s  {entry['task']}")
            return
        unknown = [name for name in names if name not in schedule]
        if unknown:
            raise CommandError(f"Unknown beat entries: {', '.join(unknown)} (see --list)")
        app.loader.import_default_modules()
        failed = []
        for name in names:
            entry = schedule[name]
            result = app.tasks[entry["task"]].apply(args=entry.get("args", ()), kwargs=entry.get("kwargs", {}))
            if result.failed():
                failed.append(name)
                self.stderr.write(f"{name}: failed: {result.result!r}")
            else:
                self.stdout.write(f"{name}: {result.result}")
        if failed:
            raise CommandError(f"Failed: {', '.join(failed)}")
