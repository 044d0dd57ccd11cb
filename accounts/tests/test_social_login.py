"""Social login through django-allauth, with the providers' token and profile endpoints stubbed at the
HTTP layer (the requests session allauth uses): no network."""
import json
from urllib.parse import parse_qs, urlparse

import pytest
from allauth.socialaccount.models import SocialAccount
from django.urls import reverse

from accounts.models import ActivityEvent, Customer
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_USERINFO_URL = "https://www.googleapis.com/oauth2/v2/userinfo"
FACEBOOK_TOKEN_URL = "https://graph.facebook.com/"


class FakeResponse:
    def __init__(self, status_code: int, payload: dict):
        self.status_code, self.payload = status_code, payload
        self.text = json.dumps(payload)
        self.content = self.text.encode()
        self.headers = {"content-type": "application/json; charset=utf-8"}
        self.ok = status_code < 400

    def json(self):
        return self.payload

    def raise_for_status(self):
        if not self.ok:
            import requests

            raise requests.HTTPError(f"{self.status_code}")


class FakeProviderSession:
    """Answers like Google's / Facebook's token and profile endpoints; records every call."""

    def __init__(self, profiles: dict[str, dict]):
        self.profiles = profiles  # provider -> profile JSON
        self.calls: list[tuple[str, str]] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def request(self, method, url, **kwargs):
        self.calls.append((method.upper(), url))
        if url == GOOGLE_TOKEN_URL or url.startswith(FACEBOOK_TOKEN_URL) and "oauth/access_token" in url:
            assert (kwargs.get("data") or kwargs.get("params") or {}).get("code") == "auth-code"
            return FakeResponse(200, {"access_token": "provider-access-token", "token_type": "Bearer",
                                      "expires_in": 3600})
        if url == GOOGLE_USERINFO_URL:
            assert kwargs["headers"]["Authorization"] == "Bearer provider-access-token"
            return FakeResponse(200, self.profiles["google"])
        if url.startswith(FACEBOOK_TOKEN_URL) and url.endswith("/me"):
            assert kwargs["params"]["access_token"] == "provider-access-token"
            return FakeResponse(200, self.profiles["facebook"])
        raise AssertionError(f"unexpected HTTP call {method} {url}")

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)

    def post(self, url, **kwargs):
        return self.request("POST", url, **kwargs)


@pytest.fixture
def providers(settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {"SCOPE": ["openid", "profile", "email"], "OAUTH_PKCE_ENABLED": True,
                   "APPS": [{"client_id": "google-client", "secret": "google-secret"}]},
        "facebook": {"METHOD": "oauth2", "SCOPE": ["email"],
                     "APPS": [{"client_id": "fb-app", "secret": "fb-secret"}]},
    }


@pytest.fixture
def provider_http(monkeypatch, providers):
    from allauth.socialaccount.adapter import DefaultSocialAccountAdapter

    session = FakeProviderSession({
        "google": {"id": "google-uid-1", "email": "alice@gmail.test", "verified_email": True, "name": "Alice"},
        "facebook": {"id": "fb-uid-1", "email": "alice@fb.test", "name": "Alice"},
    })
    monkeypatch.setattr(DefaultSocialAccountAdapter, "get_requests_session", lambda self: session)
    return session


def oauth_round_trip(client, provider="google", process="login", **extra):
    """Start at our login button, follow the redirect to the provider, come back to the callback."""
    start = client.post(f"/accounts/social/{provider}/login/", {"process": process}, **extra)
    assert start.status_code == 302, start
    state = parse_qs(urlparse(start.url).query)["state"][0]
    return client.get(f"/accounts/social/{provider}/login/callback/", {"code": "auth-code", "state": state}, **extra)


def logged_in_user_id(client):
    return client.session.get("_auth_user_id")


def link(user, provider="google", uid="google-uid-1"):
    return SocialAccount.objects.create(user=user, provider=provider, uid=uid)


def test_login_with_a_linked_google_account(client, provider_http):
    user = UserFactory()
    link(user)
    response = oauth_round_trip(client)
    assert response.status_code == 302 and response.url == reverse("dashboard")
    assert logged_in_user_id(client) == str(user.pk)
    assert ("POST", GOOGLE_TOKEN_URL) in provider_http.calls and ("GET", GOOGLE_USERINFO_URL) in provider_http.calls
    assert ActivityEvent.objects.filter(customer=user.customer, action="login", actor=user).exists()
    assert client.get("/").status_code == 200  # the session works on the next request (our auth backend)


def test_login_with_a_linked_facebook_account(client, provider_http):
    user = UserFactory()
    link(user, provider="facebook", uid="fb-uid-1")
    response = oauth_round_trip(client, provider="facebook")
    assert response.status_code == 302 and logged_in_user_id(client) == str(user.pk)
    assert any(url.endswith("/me") for _method, url in provider_http.calls)


def test_an_unlinked_social_profile_creates_no_account_and_logs_nobody_in(client, provider_http):
    UserFactory(email="alice@gmail.test")  # same email: still no automatic linking
    users_before = Customer.objects.count()
    response = oauth_round_trip(client)
    assert response.status_code == 302 and response.url == reverse("accounts:login")
    assert logged_in_user_id(client) is None and Customer.objects.count() == users_before
    assert not SocialAccount.objects.exists()
    page = client.get(response.url).content.decode()
    assert "No account is linked to this Google profile" in page


def test_link_in_settings(client, provider_http):
    user = UserFactory()
    client.force_login(user)
    page = client.get(reverse("accounts:settings_security")).content.decode()
    assert 'data-testid="link-google"' in page and 'data-testid="link-facebook"' in page
    response = oauth_round_trip(client, process="connect")
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:settings_security"))
    account = SocialAccount.objects.get(user=user)
    assert (account.provider, account.uid) == ("google", "google-uid-1")
    assert ActivityEvent.objects.filter(customer=user.customer, action="social_linked").exists()
    from notifications.models import Notification
    assert Notification.objects.filter(customer=user.customer, kind="security_change").exists()
    assert 'data-testid="linked-google"' in client.get(reverse("accounts:settings_security")).content.decode()


def test_a_profile_linked_to_another_account_cannot_be_linked_again(client, provider_http):
    link(UserFactory())
    user = UserFactory()
    client.force_login(user)
    oauth_round_trip(client, process="connect")
    assert not SocialAccount.objects.filter(user=user).exists()


def test_unlink_is_refused_while_it_is_the_only_way_to_log_in(client, providers):
    user = UserFactory()
    user.set_unusable_password()
    user.save()
    google = link(user)
    client.force_login(user)
    url = reverse("accounts:settings_social_unlink", args=[google.pk])
    response = client.post(url, follow=True)
    assert "only way to log in" in response.content.decode()
    assert SocialAccount.objects.filter(pk=google.pk).exists()

    link(user, provider="facebook", uid="fb-1")  # another way in: unlinking one is fine now
    assert client.post(url).status_code == 302
    assert not SocialAccount.objects.filter(pk=google.pk).exists()
    assert ActivityEvent.objects.filter(customer=user.customer, action="social_unlinked").exists()


def test_unlink_with_a_password_and_someone_elses_link_is_404(client, providers):
    user = UserFactory()
    google = link(user)
    other = link(UserFactory(), provider="facebook", uid="x")
    client.force_login(user)
    assert client.post(reverse("accounts:settings_social_unlink", args=[other.pk])).status_code == 404
    assert client.get(reverse("accounts:settings_social_unlink", args=[google.pk])).status_code == 405
    assert client.post(reverse("accounts:settings_social_unlink", args=[google.pk])).status_code == 302
    assert not SocialAccount.objects.filter(user=user).exists() and SocialAccount.objects.filter(pk=other.pk).exists()


def test_two_factor_is_still_asked_after_social_login(client, provider_http):
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = UserFactory()
    link(user)
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    response = oauth_round_trip(client)
    assert response.status_code == 302 and response.url == reverse("accounts:login_verify")
    assert logged_in_user_id(client) is None
    assert client.get("/").status_code == 302  # no session yet

    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    response = client.post(reverse("accounts:login_verify"), {"token": code})
    assert response.status_code == 302 and logged_in_user_id(client) == str(user.pk)
    assert client.get("/").status_code == 200


def test_ip_allowlist_is_still_applied_to_social_login(client, provider_http):
    user = UserFactory()
    link(user)
    Customer.objects.filter(pk=user.customer_id).update(ip_allowlist="198.51.100.0/24")
    response = oauth_round_trip(client, REMOTE_ADDR="203.0.113.5")
    assert response.status_code == 302 and response.url == reverse("accounts:login")
    assert logged_in_user_id(client) is None
    failure = ActivityEvent.objects.get(customer=user.customer, action="login_failed")
    assert failure.details == {"reason": "ip_restricted"} and failure.ip == "203.0.113.5"
    assert "restricted by the account owner" in client.get(response.url, REMOTE_ADDR="203.0.113.5").content.decode()

    response = oauth_round_trip(client, REMOTE_ADDR="198.51.100.7")  # from an allowed address it works
    assert logged_in_user_id(client) == str(user.pk)


def test_social_login_is_hidden_when_no_provider_is_configured(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {"google": {}, "facebook": {}}
    assert 'data-testid="social-login"' not in client.get(reverse("accounts:login")).content.decode()
    user = UserFactory()
    client.force_login(user)
    assert 'data-testid="section-social"' not in client.get(reverse("accounts:settings_security")).content.decode()


def test_login_page_offers_configured_providers(client, providers):
    page = client.get(reverse("accounts:login")).content.decode()
    assert 'data-testid="social-google"' in page and 'data-testid="social-facebook"' in page


def test_a_link_stays_visible_and_removable_after_its_provider_is_unconfigured(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {"google": {}, "facebook": {}}
    user = UserFactory()
    google = link(user)
    client.force_login(user)
    page = client.get(reverse("accounts:settings_security")).content.decode()
    assert 'data-testid="linked-google"' in page and 'data-testid="link-facebook"' not in page
    assert client.post(reverse("accounts:settings_social_unlink", args=[google.pk])).status_code == 302
    assert not SocialAccount.objects.filter(pk=google.pk).exists()
