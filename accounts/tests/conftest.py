import pytest

from accounts.models import Customer
from accounts.tests.factories import UserFactory


@pytest.fixture(params=["en", "ru"])
def language(request):
    return request.param


@pytest.fixture
def owner(db, language):
    user = UserFactory(email="owner@example.com")
    Customer.objects.filter(pk=user.customer_id).update(language=language)
    user.customer.refresh_from_db()
    return user


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client
