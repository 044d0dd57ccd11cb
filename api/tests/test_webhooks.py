"""Outgoing webhooks: outbox written with the event, Standard Webhooks signatures, retries, disabling, SSRF."""
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from accounts.models import ActivityEvent, User
from api.models import WebhookDelivery, WebhookEndpoint
from api.webhooks import url_check, webhook_deliver, webhook_delivery_replay, webhook_endpoint_create, webhooks_sweep
from notifications.services import notify

from .conftest import trusted

pytestmark = pytest.mark.django_db


class Receiver:
    """A real HTTP endpoint on loopback that records requests and answers with `self.status`."""

    def __init__(self):
        self.requests, self.status = [], 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers), body.decode()))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def endpoint(owner, receiver):
    return webhook_endpoint_create(customer=owner.customer, user=owner, url=receiver.url,
                                   events=["invoice.issued", "balance.low"])


def _low_balance(customer):
    return notify(customer=customer, kind="low_balance", context={"balance": "1.00 EUR", "threshold": "5.00 EUR"})


def test_event_is_signed_per_standard_webhooks_and_delivered(owner, endpoint, receiver, place):
    placed = place(owner.customer)  # issues an invoice: the invoice_issued notification raises the event
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.event_type == "invoice.issued"
    assert webhook_deliver(delivery_id=delivery.pk) == WebhookDelivery.Status.DELIVERED
    headers, body = receiver.requests[0]
    payload = Webhook(endpoint.secret).verify(body, headers)  # the reference implementation's check
    assert payload["type"] == "invoice.issued" and payload["data"]["id"] == delivery.event_id
    assert placed.invoice.number in body
    with pytest.raises(Exception):
        Webhook("whsec_" + "A" * 44).verify(body, headers)
    delivery.refresh_from_db()
    assert delivery.last_status_code == 200 and delivery.delivered_at is not None
    assert webhook_deliver(delivery_id=delivery.pk) is None  # delivered rows are never claimed again


def test_unsubscribed_events_and_other_customers_write_nothing(owner, other_owner, endpoint):
    notify(customer=owner.customer, kind="service_expiring", context={})
    _low_balance(other_owner.customer)
    assert not WebhookDelivery.objects.exists()


def test_outbox_row_is_part_of_the_events_transaction(owner, endpoint):
    with pytest.raises(RuntimeError), transaction.atomic():
        _low_balance(owner.customer)
        raise RuntimeError("rolled back")
    assert not WebhookDelivery.objects.exists()


def test_failures_retry_with_backoff_then_succeed(owner, endpoint, receiver, settings):
    settings.WEBHOOKS_RETRY_BASE_SECONDS = 60
    receiver.status = 500
    with time_machine.travel(timezone.now(), tick=False) as clock:
        _low_balance(owner.customer)
        delivery = WebhookDelivery.objects.get()
        assert webhook_deliver(delivery_id=delivery.pk) == WebhookDelivery.Status.PENDING
        delivery.refresh_from_db()
        assert delivery.attempts == 1 and delivery.last_status_code == 500
        assert delivery.next_attempt_at == timezone.now() + timedelta(seconds=60)
        assert webhooks_sweep() == 0 and webhook_deliver(delivery_id=delivery.pk) is None  # not due yet
        clock.shift(timedelta(seconds=61))
        assert webhook_deliver(delivery_id=delivery.pk) == WebhookDelivery.Status.PENDING
        delivery.refresh_from_db()
        assert delivery.next_attempt_at == timezone.now() + timedelta(seconds=120)
        receiver.status = 204
        clock.shift(timedelta(seconds=121))
        assert webhooks_sweep() == 1
        assert webhook_deliver(delivery_id=delivery.pk) == WebhookDelivery.Status.DELIVERED
    assert len(receiver.requests) == 3
    assert len({headers["webhook-id"] for headers, _body in receiver.requests}) == 1  # same id on every retry
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0


def test_endpoint_that_keeps_failing_is_disabled_with_a_notice(owner, endpoint, receiver, settings):
    settings.WEBHOOKS_DISABLE_AFTER_FAILURES = 2
    settings.WEBHOOKS_RETRY_BASE_SECONDS = 0
    receiver.status = 410
    _low_balance(owner.customer)
    delivery = WebhookDelivery.objects.get()
    webhook_deliver(delivery_id=delivery.pk)
    webhook_deliver(delivery_id=delivery.pk)
    endpoint.refresh_from_db()
    assert not endpoint.is_active and "410" in endpoint.disabled_reason
    assert ActivityEvent.objects.filter(customer=owner.customer, action="webhook_disabled").exists()
    assert webhook_deliver(delivery_id=delivery.pk) is None and len(receiver.requests) == 2
    _low_balance(owner.customer)  # a disabled endpoint gets no new events
    assert WebhookDelivery.objects.count() == 1


def test_replay_sends_the_same_event_again(owner, endpoint, receiver):
    _low_balance(owner.customer)
    delivery = WebhookDelivery.objects.get()
    webhook_deliver(delivery_id=delivery.pk)
    webhook_delivery_replay(delivery=delivery)
    assert webhook_deliver(delivery_id=delivery.pk) == WebhookDelivery.Status.DELIVERED
    assert [h["webhook-id"] for h, _b in receiver.requests] == [delivery.event_id] * 2


@pytest.mark.parametrize("url", [
    "http://93.184.216.34/hook", "https://127.0.0.1/hook", "https://localhost/hook", "https://10.1.2.3/",
    "https://192.168.0.10/", "https://172.16.5.4/", "https://169.254.169.254/latest/meta-data/", "https://[::1]/",
    "https://[fe80::1]/", "https://[::ffff:127.0.0.1]/", "https://0.0.0.0/", "https://100.64.0.1/", "https://user:pw@93.184.216.34/",
])
def test_ssrf_guard_refuses_non_public_targets(url):
    with pytest.raises(ValidationError):
        url_check(url)


def test_ssrf_guard_accepts_a_public_https_address():
    assert url_check("https://93.184.216.34/hook") == ["93.184.216.34"]


def test_send_time_check_stops_a_url_that_became_private(owner, endpoint, receiver, settings):
    _low_balance(owner.customer)
    settings.WEBHOOKS_ALLOWED_PRIVATE_NETWORKS = []  # as if DNS now pointed the host at a private address
    delivery = WebhookDelivery.objects.get()
    assert webhook_deliver(delivery_id=delivery.pk) == WebhookDelivery.Status.PENDING
    delivery.refresh_from_db()
    assert "not allowed" in delivery.last_error and receiver.requests == []


def test_settings_page_shows_the_secret_once_and_is_scoped(client, owner, other_owner, receiver):
    client.force_login(owner)
    url = reverse("api:settings_webhooks")
    response = client.post(url, {"url": receiver.url, "events": ["balance.low"]})
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret in response.content.decode() and endpoint.secret not in client.get(url).content.decode()
    refused = client.post(url, {"url": "https://10.0.0.1/", "events": ["balance.low"]})
    assert refused.status_code == 400 and WebhookEndpoint.objects.count() == 1
    client.force_login(other_owner)
    assert client.post(reverse("api:settings_webhook_delete", args=[endpoint.pk])).status_code == 404
    client.force_login(trusted(owner.customer, User.Role.TECHNICAL))
    assert client.get(url).status_code == 403


def test_endpoints_are_read_once_per_transaction_and_fresh_in_the_next(owner, other_owner, receiver):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        _low_balance(owner.customer)
        _low_balance(other_owner.customer)
    assert len([q for q in queries.captured_queries if "api_webhookendpoint" in q["sql"]]) == 1
    webhook_endpoint_create(customer=owner.customer, user=owner, url=receiver.url, events=["balance.low"])
    with transaction.atomic():
        notify(customer=owner.customer, kind="low_balance", context={"balance": "0.50 EUR", "threshold": "5.00 EUR"})
    assert WebhookDelivery.objects.count() == 1
