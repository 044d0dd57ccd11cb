import pytest
from django.test import override_settings


@pytest.mark.django_db
def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "failing": [], "checks": {"database": "ok", "broker": "ok"}}


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
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]


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
