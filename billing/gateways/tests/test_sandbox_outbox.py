"""Sandbox webhook delivery is driven by the outbox row's due time and the beat sweeper: the first
post goes after commit, a delayed event ("pending, then success") and every retry wait in the row,
never in a Celery countdown (which the broker's visibility timeout would re-deliver every 20 s)."""
import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.utils import timezone

from billing.gateways import sandbox_provider, tasks
from billing.gateways.models import SandboxCharge, SandboxWebhookOutbox

pytestmark = pytest.mark.django_db


class Response:
    def __init__(self, status_code):
        self.status_code, self.ok, self.text = status_code, 200 <= status_code < 300, ""


@pytest.fixture
def posts(monkeypatch):
    """The portal's answers to the sandbox's POSTs, in order; records each posted event type."""
    answers, sent = [], []

    def post(url, data, timeout, headers):
        sent.append(json.loads(data)["type"])
        status = answers.pop(0) if answers else 200
        if status is None:
            raise requests.ConnectionError("portal down")
        return Response(status)

    monkeypatch.setattr(sandbox_provider.requests, "post", post)
    return answers, sent


@pytest.fixture
def no_countdown_tasks(monkeypatch):
    """Fails the test if a Celery task was queued with a countdown or ETA (recorded, since callers
    swallow errors from enqueueing)."""
    from celery.app.task import Task

    delayed = []
    original = Task.apply_async

    def apply_async(self, *args, **kwargs):
        if kwargs.get("countdown") or kwargs.get("eta"):
            delayed.append((self.name, kwargs))
            return None
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Task, "apply_async", apply_async)
    yield
    assert delayed == []


def test_pending_card_posts_pending_now_and_success_when_the_sweeper_finds_it_due(
        customer, sandbox_card, posts, no_countdown_tasks, settings, django_capture_on_commit_callbacks):
    _answers, sent = posts
    sandbox_card(behaviour="pending")
    with django_capture_on_commit_callbacks(execute=True):
        charge = sandbox_provider.card_charge(card_token="card_autopay", amount=Decimal("10.00"), currency="EUR",
                                              merchant_reference="ref-1")
    assert sent == ["payment.pending"]
    delayed = SandboxWebhookOutbox.objects.get(event_type="payment.succeeded")
    assert delayed.delivered_at is None and delayed.attempts == 0
    assert delayed.deliver_after >= timezone.now() + timedelta(seconds=settings.SANDBOX_PENDING_DELAY - 5)

    assert tasks.sandbox_webhooks_deliver_due() == 0  # not due yet: nothing posted, charge still pending
    assert sent == ["payment.pending"] and SandboxCharge.objects.get(pk=charge.pk).status == "pending"

    due = timezone.now() + timedelta(seconds=settings.SANDBOX_PENDING_DELAY + 1)
    assert sandbox_provider.webhooks_deliver_due(now=due) == 1
    assert sent == ["payment.pending", "payment.succeeded"]
    assert SandboxCharge.objects.get(pk=charge.pk).status == "succeeded"
    assert sandbox_provider.webhooks_deliver_due(now=due + timedelta(hours=2)) == 0  # delivered once


def test_failed_post_is_retried_by_the_sweeper_after_its_back_off(
        customer, sandbox_card, posts, no_countdown_tasks, django_capture_on_commit_callbacks):
    answers, sent = posts
    answers.extend([None, 500])  # portal down on the first post, erroring on the first retry
    sandbox_card()
    with django_capture_on_commit_callbacks(execute=True):
        sandbox_provider.card_charge(card_token="card_autopay", amount=Decimal("10.00"), currency="EUR",
                                     merchant_reference="ref-2")
    row = SandboxWebhookOutbox.objects.get()
    assert sent == ["payment.succeeded"] and row.attempts == 1 and row.delivered_at is None
    first_retry = row.deliver_after
    assert first_retry > timezone.now() + timedelta(seconds=50)  # 1 minute back-off, kept in the row

    assert sandbox_provider.webhooks_deliver_due() == 0  # not yet due
    assert sandbox_provider.webhooks_deliver_due(now=first_retry) == 0  # posted, answered 500
    row.refresh_from_db()
    assert row.attempts == 2 and row.deliver_after > timezone.now() + timedelta(seconds=110)  # then 2 minutes
    assert sandbox_provider.webhooks_deliver_due(now=row.deliver_after) == 1
    row.refresh_from_db()
    assert row.delivered_at is not None and row.attempts == 3 and len(sent) == 3
