import io

import pytest

from accounts.tests.factories import UserFactory
from billing.gateways import demo
from billing.gateways.models import GatewayConfig, SavedPaymentMethod
from billing.gateways.selectors import gateways_available


@pytest.mark.django_db
def test_demo_enables_the_sandbox_and_saves_a_card(currencies):
    owner = UserFactory()
    demo.seed(customer=owner.customer, owner=owner, stdout=io.StringIO())

    assert set(GatewayConfig.objects.values_list("code", flat=True)) == {"sandbox", "stripe", "bank_transfer"}
    for currency in ("EUR", "USD", "JPY"):
        assert "sandbox" in [g.code for g in gateways_available(customer=owner.customer, currency=currency)]
    method = SavedPaymentMethod.objects.get(customer=owner.customer)
    assert method.is_default and str(method) == "Visa •••• 4242"
