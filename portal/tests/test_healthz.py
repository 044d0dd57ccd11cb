import datetime as dt

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from ops.models import Heartbeat
from ops.services import heartbeat_record

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.timezone.utc)


MONITOR = {"HTTP_AUTHORIZATION": "Bearer monitor-token-123"}  # sees the error texts


@pytest.fixture(autouse=True)
def monitor_token(settings):
    settings.HEALTHZ_TOKEN = "monitor-token-123"


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.mark.django_db
def test_healthz_ok_with_every_component_alive(client, clock):
    heartbeat_record(name="beat")
    heartbeat_record(name="worker:worker@host-a")
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok", "failing": [], "degraded": [],
        "checks": {"database": "ok", "broker": "ok", "beat": "ok", "workers": "ok", "outbox": "ok"}}
    assert response["X-Request-ID"]


@pytest.mark.django_db
def test_healthz_stays_ok_for_anonymous_before_beat_and_workers_report(client, clock):
    """`make run` right after start (and CI's smoke test): no heartbeat yet, but beat and workers are
    not required by default, so /healthz is 200 with database and broker ok."""
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"] == "ok"
    assert body["degraded"] == ["beat", "workers"] and body["checks"]["beat"] == "fail"
    assert client.get("/healthz", **MONITOR).json()["checks"]["beat"] == "no beat heartbeat yet"


@pytest.mark.django_db
def test_healthz_503_when_a_required_beat_is_stale(client, clock, settings):
    settings.HEALTHZ_REQUIRED = ["database", "broker", "beat", "workers"]
    heartbeat_record(name="beat")
    heartbeat_record(name="worker:worker@host-a")
    clock.shift(dt.timedelta(seconds=settings.HEALTHZ_BEAT_MAX_AGE - 1))
    assert client.get("/healthz").status_code == 200
    heartbeat_record(name="worker:worker@host-a")
    clock.shift(dt.timedelta(seconds=2))
    response = client.get("/healthz", **MONITOR)
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["beat"]
    assert body["checks"]["beat"].startswith("last beat heartbeat 121 s ago")
    assert body["checks"]["workers"] == "ok"


@pytest.mark.django_db
def test_healthz_require_parameter_makes_workers_required(client, clock):
    heartbeat_record(name="beat")
    Heartbeat.objects.create(name="worker:old@host", seen_at=timezone.now() - dt.timedelta(hours=1))
    assert client.get("/healthz").status_code == 200
    response = client.get("/healthz?require=workers,nonsense")
    assert response.status_code == 503
    assert response.json()["failing"] == ["workers"]


@pytest.mark.django_db
def test_healthz_reports_the_oldest_due_outbox_row(client, clock, settings):
    from notifications.models import EmailOutbox

    EmailOutbox.objects.create(recipient="a@example.com", subject="s", body_text="b",
                               next_attempt_at=timezone.now() - dt.timedelta(seconds=settings.HEALTHZ_OUTBOX_MAX_AGE + 60))
    response = client.get("/healthz?require=outbox", **MONITOR)
    assert response.status_code == 503
    assert response.json()["checks"]["outbox"].startswith(f"oldest due row waiting: email {settings.HEALTHZ_OUTBOX_MAX_AGE + 60} s")
    EmailOutbox.objects.update(status="sent", sent_at=timezone.now())
    assert client.get("/healthz?require=outbox").status_code == 200


@pytest.mark.django_db
def test_healthz_names_the_failing_broker(client):
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_healthz_names_the_failing_database(client, monkeypatch):
    from portal import health

    monkeypatch.setattr(health, "database_error", lambda: "OperationalError: connection refused")
    response = client.get("/healthz", **MONITOR)
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["database"]
    assert body["checks"]["beat"] == "unknown: database down"


@pytest.mark.django_db
def test_healthz_hides_error_details_from_anonymous_visitors_but_not_from_staff_or_the_token(client, monkeypatch,
                                                                                              settings):
    from accounts.tests.factories import StaffUserFactory
    from portal import health

    leak = 'OperationalError: connection to server at "127.0.0.1", port 5999 failed'
    monkeypatch.setattr(health, "database_error", lambda: leak)
    settings.HEALTHZ_TOKEN = "monitor-token-123"
    anonymous = client.get("/healthz")
    assert anonymous.status_code == 503 and "5999" not in anonymous.content.decode()
    assert anonymous.json()["checks"]["database"] == "fail" and anonymous.json()["failing"] == ["database"]
    assert "5999" not in client.get("/healthz", HTTP_AUTHORIZATION="Bearer wrong").content.decode()
    assert client.get("/healthz", HTTP_AUTHORIZATION="Bearer monitor-token-123").json()["checks"]["database"] == leak
    client.force_login(StaffUserFactory())
    assert client.get("/healthz").json()["checks"]["database"] == leak
