import pytest

from accounts.tests.factories import UserFactory


@pytest.fixture
def owner(db):
    """The root conftest's owner with a known address (tests check where mail went)."""
    return UserFactory(email="owner@example.com")


@pytest.fixture(autouse=True)
def queued_deliveries(request, monkeypatch):
    """Record delivery tasks instead of publishing them to the shared Redis, where a developer's worker
    would run them against another database. Tests using `celery_broker` talk to a real broker."""
    if "celery_broker" in request.fixturenames:
        yield None
        return
    from notifications.tasks import email_deliver_task

    queued: list[dict] = []
    monkeypatch.setattr(email_deliver_task, "apply_async", lambda **kwargs: queued.append(kwargs))
    yield queued
