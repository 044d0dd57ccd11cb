from decimal import Decimal
from itertools import count

import pytest

from accounts.tests.factories import UserFactory
from billing.services.payments import payment_record
from billing.tests.audit_after_test import pytest_runtest_call  # noqa: F401 - the ledger audit after every test
from billing.tests.factories import make_currencies

_fund_keys = count()


@pytest.fixture
def currencies(db):
    return make_currencies()


@pytest.fixture
def owner(db):
    return UserFactory()


@pytest.fixture
def customer(owner):
    return owner.customer


@pytest.fixture
def fund(currencies):
    """Credit a customer's balance through a recorded payment (the real top-up path)."""

    def do_fund(customer, amount, currency=None):
        return payment_record(
            idempotency_key=f"orders-test-fund:{customer.pk}:{next(_fund_keys)}", customer=customer,
            amount=Decimal(amount), currency=currency or customer.currency, method="bank_transfer",
        )

    return do_fund
