"""Recovery codes were stored in plain text (otp_static.StaticToken): store their keyed hash instead
(accounts.services.totp.recovery_code_digest, repeated here so later edits there cannot change history)."""
import hashlib
import hmac
import re

from django.conf import settings
from django.db import migrations

PLAIN_CODE = re.compile(r"^[0-9a-f]{5}-[0-9a-f]{5}$")


def hash_plain_codes(apps, schema_editor):
    StaticToken = apps.get_model("otp_static", "StaticToken")
    for token in StaticToken.objects.all().iterator():
        if PLAIN_CODE.match(token.token):
            digest = hmac.new(f"accounts.recovery-code:{settings.SECRET_KEY}".encode(), token.token.encode(),
                              hashlib.sha256).hexdigest()[:16]
            StaticToken.objects.filter(pk=token.pk).update(token=digest)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_low_balance_threshold_currency"), ("otp_static", "0003_add_timestamps")]

    operations = [migrations.RunPython(hash_plain_codes, migrations.RunPython.noop)]
