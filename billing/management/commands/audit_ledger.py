from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from billing.audit import audit
from ops.services import heartbeat_record


class Command(BaseCommand):
    help = ("Check that every ledger transaction balances, every account's legs sum to its balance, every paid invoice "
            "is covered, and the stored expense funding is what the FIFO gives.")

    def handle(self, *args, **options):
        results = audit()
        failures = [f"[{check}] {failure}" for check, items in results.items() for failure in items]
        for check, items in results.items():
            self.stdout.write(f"{check}: {'OK' if not items else f'{len(items)} problem(s)'}")
        # The result, for /metrics (portal_ledger_audit_ok) and alerting. On a read-only replica the
        # write fails: the audit's exit status still tells the truth.
        try:
            heartbeat_record(name="ledger-audit", ok=not failures, detail=f"{len(failures)} problem(s)")
        except DatabaseError as error:
            self.stderr.write(f"audit result not recorded for /metrics: {error}".strip())
        if failures:
            raise CommandError("Ledger audit failed:\n" + "\n".join(failures))
        self.stdout.write(self.style.SUCCESS("Ledger audit passed."))
