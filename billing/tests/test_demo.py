import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from billing import demo
from billing.models import ContractVersion, Currency, Invoice, Payer
from billing.selectors import balance_of


@pytest.mark.django_db
def test_demo_seed_gives_rates_invoices_and_a_balance(owner, customer):
    demo.seed(customer=customer, owner=owner, stdout=io.StringIO())
    assert Currency.objects.get(code="USD").rate == Decimal("1.1607") and Currency.objects.get(code="RUB").rate_source == "fixed"
    assert balance_of(customer) > 0
    assert Invoice.objects.filter(customer=customer, status="paid").count() == 2
    assert Invoice.objects.filter(customer=customer, status="unpaid").count() == 1
    company = Payer.objects.get(customer=customer, payer_type="company")
    assert company.verification_status == "verified"
    assert Invoice.objects.get(customer=customer, status="unpaid").payer == company
    assert ContractVersion.objects.filter(published_at__isnull=False).count() == 1
    call_command("audit_ledger", stdout=io.StringIO())
