"""Fixtures shared by billing's and billing.gateways' tests (currencies, owner, customer and fund are
the root conftest's)."""
import pytest

from billing.tests.audit_after_test import pytest_runtest_call  # noqa: F401 - the ledger audit after every test


@pytest.fixture
def client_in(client, owner):
    """The test client logged in as the customer's owner."""
    client.force_login(owner)
    return client
