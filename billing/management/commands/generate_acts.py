"""Issue the monthly acts (certificates of services rendered) for a month; safe to run repeatedly."""
import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from billing.services.acts import acts_generate, previous_month
from billing.services.errors import BillingError


class Command(BaseCommand):
    help = "Generate the acts for a month (default: last month). Existing acts are left as they are."

    def add_arguments(self, parser):
        parser.add_argument("--month", help="YYYY-MM (default: last month)")

    def handle(self, *args, month=None, **options):
        if month:
            try:
                period = dt.datetime.strptime(month, "%Y-%m").date()
            except ValueError:
                raise CommandError("--month must look like 2026-10")
        else:
            period = previous_month()
        try:
            acts = acts_generate(period=period)
        except BillingError as exc:
            raise CommandError(exc.messages[0])
        for act in acts:
            self.stdout.write(f"{act.number}: client {act.customer_id}, {act.total} {act.currency}")
        self.stdout.write(self.style.SUCCESS(f"{len(acts)} act(s) issued for {period:%Y-%m}."))
