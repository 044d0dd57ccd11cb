"""Load demo data once: a staff superuser and a demo customer, then each app's `demo.seed()`.

Apps add demo content by defining `<app>/demo.py` with `seed(*, customer, owner, stdout)`; it runs
once, in the same transaction as the accounts, the first time `make run` starts. An optional
`refresh(*, stdout)` runs on every later start, to bring a demo seeded by an older version up to date.
"""
import importlib
import os

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Customer, User
from accounts.services.registration import customer_register

ADMIN = ("admin", os.environ.get("DEMO_ADMIN_PASSWORD", "admin-demo-2026"))
DEMO = ("demo", os.environ.get("DEMO_PASSWORD", "demo-customer-2026"))


class Command(BaseCommand):
    help = "Create the demo staff user and demo customer (idempotent)."

    def handle(self, *args, **options):
        if User.objects.filter(username__iexact=DEMO[0]).exists():
            self.stdout.write("Demo data already present.")
            # A demo database seeded by an older version gets what later versions seed too (idempotent).
            for module in _demo_modules():
                if hasattr(module, "refresh"):
                    module.refresh(stdout=self.stdout)
        else:
            self._seed()
        self.stdout.write(self.style.SUCCESS(
            "\n  Portal:  http://127.0.0.1:8000/\n"
            f"  Customer login: {DEMO[0]} / {DEMO[1]}\n"
            f"  Staff admin:    http://127.0.0.1:8000/admin/  {ADMIN[0]} / {ADMIN[1]}\n"
        ))

    @transaction.atomic
    def _seed(self):
        if not User.objects.filter(username__iexact=ADMIN[0]).exists():
            User.objects.create_superuser(ADMIN[0], "admin@portal.local", ADMIN[1], email_verified=True)
        owner = customer_register(
            username=DEMO[0], email="demo@example.com", password=DEMO[1], first_name="Alex", last_name="Demo",
        )
        User.objects.filter(pk=owner.pk).update(email_verified=True)
        Customer.objects.filter(pk=owner.customer_id).update(
            street="1 Server Street", city="Amsterdam", postcode="1011 AB", country="NL"
        )
        owner.refresh_from_db()
        for module in _demo_modules():
            module.seed(customer=owner.customer, owner=owner, stdout=self.stdout)


def _demo_modules():
    """Each installed app's `demo` module, in app order."""
    for config in apps.get_app_configs():
        try:
            yield importlib.import_module(f"{config.name}.demo")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.demo":
                raise
