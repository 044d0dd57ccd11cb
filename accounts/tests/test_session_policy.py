"""Idle timeout, absolute lifetime, and re-authentication before security changes."""
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
import time_machine
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
START = datetime(2026, 6, 15, 9, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def policy(settings):
    settings.SESSION_IDLE_TIMEOUT = 3600
    settings.SESSION_ABSOLUTE_LIFETIME = 6 * 3600
    settings.SESSION_REAUTH_MAX_AGE = 600
    return settings


def test_an_idle_session_ends(client, policy):
    with time_machine.travel(START, tick=False) as clock:
        client.force_login(UserFactory())
        assert client.get("/").status_code == 200
        clock.shift(timedelta(minutes=59))
        assert client.get("/").status_code == 200  # activity keeps it alive
        clock.shift(timedelta(minutes=59))
        assert client.get("/").status_code == 200
        clock.shift(timedelta(minutes=61))
        response = client.get("/")
        assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))
        assert "_auth_user_id" not in client.session


def test_a_busy_session_still_ends_after_its_absolute_lifetime(client, policy):
    with time_machine.travel(START, tick=False) as clock:
        client.force_login(UserFactory())
        for _step in range(7):
            clock.shift(timedelta(minutes=50))
            assert client.get("/").status_code == 200
        clock.shift(timedelta(minutes=50))  # 6 h 40 min after the login, never idle
        assert client.get("/").status_code == 302


def test_changing_the_ip_allowlist_needs_a_recent_password(client, policy):
    owner = UserFactory()
    url = reverse("accounts:settings_ip_allowlist")
    with time_machine.travel(START, tick=False) as clock:
        client.force_login(owner)
        clock.shift(timedelta(minutes=11))
        response = client.post(url, {"ip_allowlist": "127.0.0.1"})
        assert response.status_code == 302 and response.url.startswith(reverse("accounts:reauth"))
        owner.customer.refresh_from_db()
        assert owner.customer.ip_allowlist == ""

        reauth = response.url
        assert client.post(reauth, {"password": "wrong"}).status_code == 200
        response = client.post(reauth, {"password": DEFAULT_PASSWORD})
        assert response.status_code == 302 and response.url == reverse("accounts:settings_security")
        client.post(url, {"ip_allowlist": "127.0.0.1"})
        owner.customer.refresh_from_db()
        assert owner.customer.ip_allowlist == "127.0.0.1"


def test_inviting_a_trusted_user_needs_a_recent_password(client, policy):
    owner = UserFactory()
    invite = {"username": "new.tech", "email": "tech@example.com", "first_name": "T", "last_name": "U",
              "role": User.Role.TECHNICAL}
    with time_machine.travel(START, tick=False) as clock:
        client.force_login(owner)
        clock.shift(timedelta(minutes=20))
        assert client.get(reverse("accounts:trusted_users")).status_code == 200  # looking is fine
        response = client.post(reverse("accounts:trusted_users"), invite)
        assert response.status_code == 302 and response.url.startswith(reverse("accounts:reauth"))
        assert not User.objects.filter(username="new.tech").exists()
