from itertools import count

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import UserFactory
from api.services import api_key_create
from orders.services import placing
from orders.tests.factories import PlanFactory, order_options

_keys = count()


@pytest.fixture(autouse=True)
def private_media(settings, tmp_path):
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"


@pytest.fixture
def other_owner(db):
    return UserFactory()


@pytest.fixture
def place(currencies):
    def do_place(customer, plan=None):
        plan = plan or PlanFactory()
        return placing.order_place(customer=customer, actor=None, plan=plan, period_months=1,
                                   options=order_options(plan), idempotency_key=f"api-test-order:{next(_keys)}")
    return do_place


def trusted(customer, role) -> User:
    return UserFactory(customer=customer, role=role)


@pytest.fixture
def key_client():
    """key_client(user, scopes) → an APIClient sending that user's new key."""

    def make(user, scopes=None, **extra):
        from api.scopes import scopes_for_role

        key, token = api_key_create(user=user, name=f"script {next(_keys)}", scopes=scopes or scopes_for_role(user.role),
                                    expires_at=None, **extra)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        client.api_key, client.token = key, token
        return client

    return make
