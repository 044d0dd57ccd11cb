from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.tests.factories import StaffUserFactory
from billing.models import Currency, LedgerTransaction, RateSnapshot
from billing.selectors import balance_of


@pytest.fixture
def staff_client(client):
    client.force_login(StaffUserFactory())
    return client


@pytest.mark.django_db
def test_billing_admin_pages_open_and_ledger_is_read_only(currencies, staff_client, customer, fund):
    fund(customer, "10.00")
    for model in ["ledgeraccount", "ledgertransaction", "payment", "invoice", "creditnote", "currency", "ratesnapshot", "raterefresherror", "taxrate"]:
        assert staff_client.get(reverse(f"admin:billing_{model}_changelist")).status_code == 200, model
    tx = LedgerTransaction.objects.first()
    assert staff_client.get(reverse("admin:billing_ledgertransaction_change", args=[tx.pk])).status_code == 200
    assert staff_client.post(reverse("admin:billing_ledgertransaction_delete", args=[tx.pk]), {"post": "yes"}).status_code == 403
    assert staff_client.get(reverse("admin:billing_ledgertransaction_add")).status_code == 403


@pytest.mark.django_db
def test_staff_adjustment_form_is_idempotent_per_form(currencies, staff_client, customer):
    data = {"customer_id": customer.pk, "amount": "15.00", "reason": "Goodwill credit", "nonce": "abc123"}
    url = reverse("admin:billing_balance_adjust")
    assert staff_client.post(url, data).status_code == 302
    assert staff_client.post(url, data).status_code == 302  # double submit
    assert balance_of(customer) == Decimal("15.00")


@pytest.mark.django_db
def test_staff_fixed_rate_keeps_history(currencies, staff_client):
    url = reverse("admin:billing_currency_change", args=["RUB"])
    response = staff_client.post(url, {"enabled": "on", "position": 2, "rate_source": "fixed", "rate": "97.25"})
    assert response.status_code == 302
    assert Currency.objects.get(code="RUB").rate == Decimal("97.25")
    assert RateSnapshot.objects.filter(currency="RUB", value=Decimal("97.25"), source="fixed").exists()
