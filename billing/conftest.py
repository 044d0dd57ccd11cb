"""Fixtures shared by billing's and billing.gateways' tests."""
from decimal import Decimal

import pytest

from accounts.tests.factories import UserFactory
from billing.services.payments import payment_record
from billing.tests.audit_after_test import pytest_runtest_call  # noqa: F401 - the ledger audit after every test
from billing.tests.factories import make_currencies


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
def client_in(client, owner):
    """The test client logged in as the customer's owner."""
    client.force_login(owner)
    return client


@pytest.fixture
def fund(currencies):
    """Credit a customer's balance through a recorded payment (the real top-up path)."""
    counter = {"n": 0}

    def do_fund(customer, amount, currency=None):
        counter["n"] += 1
        return payment_record(
            idempotency_key=f"test-fund:{customer.pk}:{counter['n']}:{amount}", customer=customer,
            amount=Decimal(amount), currency=currency or customer.currency, method="bank_transfer",
        )

    return do_fund
