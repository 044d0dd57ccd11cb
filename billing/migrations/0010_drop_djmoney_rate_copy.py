"""django-money's exchange app kept a copy of our rates (`exchange_rate`) that only a test read; it is no
longer installed (billing.Currency is the one rate store), so its tables and migration records go. The copy
is derived data: nothing is lost, and reversing leaves the app uninstalled."""
from django.db import migrations

DROP = """
DROP TABLE IF EXISTS exchange_rate;
DROP TABLE IF EXISTS exchange_exchangebackend;
DELETE FROM django_migrations WHERE app = 'exchange';
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0009_ledger_balanced_check_per_statement")]

    operations = [migrations.RunSQL(DROP, reverse_sql=migrations.RunSQL.noop)]
