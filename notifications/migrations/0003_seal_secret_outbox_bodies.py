"""Seal the bodies of unsent mail that holds a sign-in link (sent ones were already blanked)."""
from django.db import migrations


def seal_unsent(apps, schema_editor):
    from notifications.secret_box import SEALED_PREFIX, seal

    EmailOutbox = apps.get_model("notifications", "EmailOutbox")
    for email in EmailOutbox.objects.filter(contains_secret=True).exclude(body_text="").exclude(
            body_text__startswith=SEALED_PREFIX).iterator():
        EmailOutbox.objects.filter(pk=email.pk).update(body_text=seal(email.body_text), body_html=seal(email.body_html))


class Migration(migrations.Migration):
    dependencies = [("notifications", "0002_outbox_contains_secret")]

    operations = [migrations.RunPython(seal_unsent, migrations.RunPython.noop)]
