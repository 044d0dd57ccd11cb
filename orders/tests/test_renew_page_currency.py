"""The renew page shows the balance in the account currency, which after a currency change is not
the currency the order was bought in ("€51.07" was shown on a $51.07 balance)."""
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.services.corrections import balance_adjust
from billing.services.currency import account_currency_change, account_currency_change_preview
from billing.services.ledger import customer_account
from orders.services import placing

from .factories import PlanFactory

pytestmark = pytest.mark.django_db


def test_renew_page_shows_the_balance_in_the_account_currency(client, owner, customer, fund):
    fund(customer, "100.00")
    order = placing.order_place(customer=customer, actor=None, plan=PlanFactory(), period_months=1, options={},
                                idempotency_key="eur-order").order
    assert order.currency == "EUR"
    rate = account_currency_change_preview(customer=customer, currency="USD").quote.rate
    account_currency_change(customer=customer, currency="USD", expected_rate=rate)
    balance_adjust(customer=customer, amount=Decimal("51.07") - customer_account(
        customer=customer, currency="USD").balance, reason="round figure for the test", actor=None)

    client.force_login(owner)
    page = client.get(reverse("orders:order_renew", args=[order.pk])).content.decode()

    assert "$51.07" in page and "€51.07" not in page
