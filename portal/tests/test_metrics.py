"""GET /metrics: protected by a token or an allowlist, and every family the operator alerts on."""
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.tests.factories import UserFactory
from billing.models import RateSnapshot
from billing.tests.factories import make_currencies
from notifications.models import EmailOutbox
from ops.services import heartbeat_record
from orders.models import Order
from orders.tests.factories import PlanFactory
from orders.tests.test_renewals import fund

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=dt_timezone.utc)
TOKEN = "metrics-token-0123456789"


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def samples(body: bytes) -> dict[tuple, float]:
    """{(name, frozenset(labels)): value} for every sample in the exposition."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


@pytest.mark.django_db
def test_metrics_are_hidden_unless_a_token_or_allowlist_is_configured(client, settings):
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.django_db
def test_metrics_allowlist_by_client_network(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200


@pytest.mark.django_db
def test_metrics_report_latency_queues_outboxes_renewals_audit_rates_and_heartbeats(client, settings, clock):
    settings.METRICS_TOKEN = TOKEN
    make_currencies()
    user = UserFactory()
    fund(user.customer, "100.00")
    start = timezone.now() - timedelta(days=31)
    Order.objects.create(customer=user.customer, plan=PlanFactory(), period_months=1, price=Decimal("10.00"), currency="EUR",
                         status=Order.Status.ACTIVE, provisioning=Order.Provisioning.DONE, anchor_at=start,
                         anchor_months=1, period_started_at=start, expires_at=timezone.now(), current_period=1)
    call_command("renew_services", "--no-progress")  # the cron path; the beat task records the same way
    call_command("audit_ledger")
    EmailOutbox.objects.create(recipient="a@example.com", subject="s", body_text="b",
                               next_attempt_at=timezone.now() - timedelta(seconds=90))
    RateSnapshot.objects.create(currency="USD", base_currency="EUR", value=Decimal("1.1"), source="ecb")
    heartbeat_record(name="beat")
    heartbeat_record(name="worker:worker@host-a")
    clock.shift(timedelta(seconds=30))
    client.force_login(user)
    assert client.get("/").status_code == 200

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    found = samples(response.content)
    assert found[("portal_request_duration_seconds_count",
                  frozenset({"view": "dashboard", "method": "GET", "status": "2xx"}.items()))] >= 1
    assert ("portal_celery_queue_depth", frozenset({"queue": "celery"}.items())) in found
    assert found[("portal_outbox_backlog", frozenset({"outbox": "email"}.items()))] >= 1
    assert found[("portal_outbox_oldest_due_age_seconds", frozenset({"outbox": "email"}.items()))] == 120
    assert found[("portal_renewal_run_orders", frozenset({"result": "renewed"}.items()))] == 1
    assert found[("portal_renewal_run_ok", frozenset())] == 1
    assert found[("portal_ledger_audit_ok", frozenset())] == 1
    assert found[("portal_ledger_audit_age_seconds", frozenset())] == 30
    assert found[("portal_exchange_rate_age_seconds", frozenset({"currency": "USD"}.items()))] == 30
    assert found[("portal_heartbeat_age_seconds", frozenset({"component": "worker", "host": "worker@host-a"}.items()))] == 30
    assert found[("portal_heartbeat_age_seconds", frozenset({"component": "beat", "host": ""}.items()))] == 30


@pytest.mark.django_db
def test_a_failed_ledger_audit_shows_in_metrics(client, settings):
    settings.METRICS_TOKEN = TOKEN
    heartbeat_record(name="ledger-audit", ok=False, detail="2 problem(s)")
    found = samples(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content)
    assert found[("portal_ledger_audit_ok", frozenset())] == 0


@pytest.mark.django_db
def test_the_beat_renewal_task_records_its_run(client, settings, clock):
    from orders.tasks import renew_services_task

    settings.METRICS_TOKEN = TOKEN
    renew_services_task()  # nothing due
    found = samples(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content)
    assert found[("portal_renewal_run_ok", frozenset())] == 1
    assert found[("portal_renewal_run_orders", frozenset({"result": "claimed"}.items()))] == 0
    assert found[("portal_renewal_run_age_seconds", frozenset())] == 0


@pytest.mark.django_db
def test_audit_ledger_on_a_read_only_replica_still_audits(capsys):
    """DEPLOYMENT.md suggests running the audit against a replica: recording its result must not break it."""
    import io

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION READ ONLY")  # what a hot standby enforces
    out, err = io.StringIO(), io.StringIO()
    call_command("audit_ledger", stdout=out, stderr=err)
    assert "Ledger audit passed." in out.getvalue()
    assert "audit result not recorded" in err.getvalue()
