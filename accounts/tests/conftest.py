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


@pytest.fixture(autouse=True)
def outbox_delivered_at_once(monkeypatch):
    """Mail goes through notifications' outbox; deliver each row when its task is queued (after commit),
    as the worker would, so `mail.outbox` holds what was sent. Nothing is published to Redis."""
    from notifications import services
    from notifications.tasks import email_deliver_task

    monkeypatch.setattr(email_deliver_task, "apply_async",
                        lambda kwargs, **options: services.email_deliver(**kwargs))
