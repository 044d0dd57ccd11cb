"""Registration, password reset and verification resend are rate-limited per IP and per account."""
import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory

# Fixed windows: freeze the clock inside one window, so no test straddles a window boundary.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_clock")]


@pytest.fixture
def frozen_clock():
    with time_machine.travel("2026-06-01 12:10:00+00:00", tick=False):
        yield


def _register(client, n, email=None, ip="203.0.113.5"):
    return client.post(reverse("accounts:register"), {
        "username": f"newuser{n}", "email": email or f"new{n}@example.com", "first_name": "Ann", "last_name": "Lee",
        "password1": "correct horse battery 9", "password2": "correct horse battery 9", "accept_terms": "on",
        "accept_privacy": "on"}, REMOTE_ADDR=ip)


def test_registration_per_ip(client, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "register": {"ip": "2/3600", "account": "5/3600"}}
    assert [_register(client, n).status_code for n in range(2)] == [200, 200]
    users = User.objects.count()
    assert User.objects.filter(username__in=["newuser0", "newuser1"]).count() == 2
    refused = _register(client, 3)
    assert refused.status_code == 429 and int(refused["Retry-After"]) == 50 * 60 + 1
    assert "Too many attempts" in refused.content.decode()
    assert User.objects.count() == users  # the view did not run
    assert _register(client, 4, ip="198.51.100.1").status_code == 200  # another address


def test_password_reset_per_account_and_ip(client, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "password_reset": {"ip": "5/3600", "account": "2/3600"}}
    user = UserFactory(email="victim@example.com")
    url = reverse("accounts:password_reset")
    for ip in ("203.0.113.1", "203.0.113.2"):
        assert client.post(url, {"email": user.email}, REMOTE_ADDR=ip).status_code == 302
    sent = len(mail.outbox)
    # A third address does not help against the per-account limit: no more mail to the victim.
    assert client.post(url, {"email": user.email.upper()}, REMOTE_ADDR="203.0.113.3").status_code == 429
    assert len(mail.outbox) == sent
    assert client.post(url, {"email": "other@example.com"}, REMOTE_ADDR="203.0.113.3").status_code == 302


def test_verification_resend_per_user(client, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "verification_resend": {"ip": "10/3600", "account": "1/3600"}}
    user = UserFactory(email_verified=False)
    client.force_login(user)
    url = reverse("accounts:resend_verification")
    assert client.post(url).status_code == 302
    assert client.post(url).status_code == 429


def test_get_is_never_counted(client, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "register": {"ip": "1/3600"}}
    for _ in range(3):
        assert client.get(reverse("accounts:register")).status_code == 200
