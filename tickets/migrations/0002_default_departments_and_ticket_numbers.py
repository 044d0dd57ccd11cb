from django.conf import settings
from django.db import migrations

DEFAULT_DEPARTMENTS = [
    # (slug, name, category, local part of the staff address)
    ("support", "Technical support", "support", "support"),
    ("billing", "Billing", "billing", "billing"),
    ("abuse", "Abuse", "abuse", "abuse"),
]


def create_departments(apps, schema_editor):
    Department = apps.get_model("tickets", "Department")
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "portal.local"
    for position, (slug, name, category, local_part) in enumerate(DEFAULT_DEPARTMENTS):
        Department.objects.get_or_create(
            slug=slug,
            defaults={"name": name, "category": category, "email": f"{local_part}@{domain}", "position": position},
        )


def remove_departments(apps, schema_editor):
    Department = apps.get_model("tickets", "Department")
    Department.objects.filter(slug__in=[slug for slug, *_ in DEFAULT_DEPARTMENTS], tickets__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("tickets", "0001_initial")]

    operations = [
        migrations.RunPython(create_departments, remove_departments),
        # Ticket numbers customers quote start at 10001 rather than 1.
        migrations.RunSQL(
            "SELECT setval(pg_get_serial_sequence('tickets_ticket', 'id'), 10000, true);",
            migrations.RunSQL.noop,
        ),
    ]
