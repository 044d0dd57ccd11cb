"""Passkeys end to end in Chromium with a virtual authenticator (CDP WebAuthn domain)."""
from urllib.parse import urlsplit

import pytest

from accounts.models import ActivityEvent, Customer
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from passkeys.models import Passkey

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def authenticator(page, live_server, settings):
    settings.PASSKEYS_RP_ID = "localhost"
    settings.PASSKEYS_ORIGINS = [live_server.url]
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


def test_add_a_passkey_then_log_in_with_it_without_a_password(page, login, authenticator):
    user = UserFactory(username="keyholder")
    login("keyholder", DEFAULT_PASSWORD)
    page.goto("/passkeys/settings/")
    page.fill("#passkey-name", "Work laptop")
    page.click("[data-testid=passkey-add]")
    page.wait_for_selector("[data-testid=passkey-row]")
    passkey = Passkey.objects.get(user=user)
    assert passkey.name == "Work laptop"
    cdp, authenticator_id = authenticator
    assert len(cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]) == 1

    page.context.clear_cookies()
    page.goto("/accounts/login/")
    page.click("[data-testid=passkey-login-link]")
    page.click("[data-testid=passkey-login]")
    page.wait_for_url(lambda url: urlsplit(url).path == "/")  # the dashboard
    assert "Client ID" in page.content()
    assert ActivityEvent.objects.filter(actor=user, action="login").count() == 2
    passkey.refresh_from_db()
    assert passkey.last_used_at is not None


def test_ip_restriction_applies_to_passkey_login(page, login, authenticator):
    user = UserFactory(username="restricted")
    login("restricted", DEFAULT_PASSWORD)
    page.goto("/passkeys/settings/")
    page.click("[data-testid=passkey-add]")
    page.wait_for_selector("[data-testid=passkey-row]")
    Customer.objects.filter(pk=user.customer_id).update(ip_allowlist="192.0.2.1")
    page.context.clear_cookies()
    page.goto("/passkeys/login/")
    page.click("[data-testid=passkey-login]")
    page.wait_for_selector("[data-passkey-error]:not(:empty)")
    assert "not allowed" in page.text_content("[data-passkey-error]")
    assert ActivityEvent.objects.filter(actor=user, action="login").count() == 1
