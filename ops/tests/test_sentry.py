"""Errors reach Sentry (SENTRY_DSN) with personal data scrubbed: the real SDK and Django integration,
with a transport that keeps the envelopes in memory instead of sending them."""
import pytest
import sentry_sdk
from sentry_sdk.transport import Transport

from accounts.tests.factories import UserFactory
from ops.sentry import FILTERED, init_sentry, scrub_event


class CapturingTransport(Transport):
    def __init__(self, options=None):
        super().__init__(options)
        self.events = []

    def capture_envelope(self, envelope):
        for item in envelope.items:
            if item.type == "event":
                self.events.append(item.payload.json)


@pytest.fixture
def sentry_events(settings):
    transport = CapturingTransport()
    settings.SENTRY_ENVIRONMENT = "test"
    init_sentry("https://public@sentry.example.invalid/1", transport=transport)
    yield transport.events
    sentry_sdk.init()  # no DSN: the SDK stays installed but sends nothing


@pytest.mark.django_db
def test_an_error_in_a_view_reaches_sentry_without_personal_data(client, monkeypatch, sentry_events):
    user = UserFactory(email="alice.secret" + "@example.com")  # split: the event carries this file's source lines
    client.force_login(user)
    client.raise_request_exception = False

    def broken(**kwargs):
        raise RuntimeError(f"cannot render the dashboard for {user.email}")

    monkeypatch.setattr("portal.views.dashboard_data", broken)
    card, client_ip, token = "4111" * 4, ".".join(["203", "0", "113", "9"]), "s3" + "cr3t"
    response = client.get(f"/?card={card}", HTTP_X_FORWARDED_FOR=client_ip, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 500
    sentry_sdk.flush()
    assert len(sentry_events) == 1
    event = sentry_events[0]
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    text = repr(event)
    for secret in (user.email, card, client_ip, token, client.cookies["sessionid"].value):
        assert secret not in text
    assert event.get("user", {}) in ({}, {"id": str(user.pk)}, {"id": user.pk})


def test_scrub_keeps_the_user_id_only_and_drops_bodies_cookies_and_locals():
    event = {
        "user": {"id": 7, "email": "bob@example.com", "ip_address": "198.51.100.4", "username": "bob"},
        "request": {"data": {"password": "hunter2"}, "cookies": {"sessionid": "abc"}, "query_string": "token=1",
                    "headers": {"Cookie": "sessionid=abc", "User-Agent": "curl", "X-Forwarded-For": "198.51.100.4"}},
        "exception": {"values": [{"value": "no invoice for bob@example.com",
                                  "stacktrace": {"frames": [{"function": "f", "vars": {"card": "4111"}}]}}]},
        "logentry": {"message": "mail to bob@example.com bounced"},
    }
    scrubbed = scrub_event(event)
    assert scrubbed["user"] == {"id": 7}
    assert scrubbed["request"]["data"] == scrubbed["request"]["cookies"] == FILTERED
    assert scrubbed["request"]["headers"] == {"Cookie": FILTERED, "User-Agent": "curl", "X-Forwarded-For": FILTERED}
    assert scrubbed["exception"]["values"][0]["value"] == f"no invoice for {FILTERED}"
    assert "vars" not in scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]
    assert scrubbed["logentry"]["message"] == f"mail to {FILTERED} bounced"
