import pytest

from accounts.tests.factories import UserFactory


@pytest.fixture
def owner(db):
    return UserFactory(email="owner@example.com")


@pytest.fixture
def customer(owner):
    return owner.customer
