"""Expense funding stored per debit (billing.funding), backfilled here by replaying the whole ledger
with the same rule the postings use from now on."""
import django.db.models.deletion
from django.db import migrations, models


def backfill(apps, schema_editor):
    from billing.funding import funding_backfill

    funding_backfill(model=apps.get_model("billing", "BalanceFunding"))
    schema_editor.execute("ANALYZE billing_balancefunding")  # plans for the Expenses page from the first request


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0008_translated_content'),
        ('billing', '0010_drop_djmoney_rate_copy'),
    ]

    operations = [
        migrations.CreateModel(
            name='BalanceFunding',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('source_kind', models.CharField(blank=True, max_length=16)),
                ('amount', models.DecimalField(decimal_places=4, max_digits=20)),
                ('currency', models.CharField(max_length=3)),
                ('expense', models.BooleanField()),
                ('account', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.ledgeraccount')),
                ('customer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.customer')),
                ('debit', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='funded_by', to='billing.ledgerentry')),
                ('payment', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.payment')),
                ('source', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='funds', to='billing.ledgerentry')),
                ('transaction', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='funding', to='billing.ledgertransaction')),
            ],
            options={
                'ordering': ['pk'],
                'indexes': [models.Index(condition=models.Q(('expense', True)), fields=['customer', '-transaction'], name='balancefunding_expenses'), models.Index(fields=['account', 'source'], name='balancefunding_account_source')],
                'constraints': [models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='balancefunding_amount_gt_0'), models.CheckConstraint(condition=models.Q(models.Q(('account__isnull', False), ('debit__isnull', False)), models.Q(('account__isnull', True), ('debit__isnull', True), ('payment__isnull', False), ('source__isnull', True)), _connector='OR'), name='balancefunding_debit_or_direct_payment'), models.UniqueConstraint(condition=models.Q(('debit__isnull', False)), fields=('debit', 'source'), name='balancefunding_debit_source_once', nulls_distinct=False), models.UniqueConstraint(condition=models.Q(('debit__isnull', True)), fields=('transaction', 'payment'), name='balancefunding_direct_once')],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
