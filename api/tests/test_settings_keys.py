"""Settings → API keys: shown once, hashed, scopes within the role, revocable."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ActivityEvent, User
from api.models import ApiKey

from .conftest import trusted

pytestmark = pytest.mark.django_db


def test_create_shows_the_token_once(client, owner):
    client.force_login(owner)
    url = reverse("api:settings_keys")
    response = client.post(url, {"name": "backup script", "scopes": ["services:read", "billing:read"], "expires": "90"})
    assert response.status_code == 200
    token = response.context["new_token"]
    assert token.startswith("hp_") and token in response.content.decode()
    assert response["Cache-Control"].startswith("max-age=0") or "no-cache" in response["Cache-Control"]
    key = ApiKey.objects.get()
    assert key.secret_hash != token and key.scopes == ["billing:read", "services:read"] and key.expires_at is not None
    assert token not in client.get(url).content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/services").status_code == 200
    assert ActivityEvent.objects.filter(action="api_key_created", details__api_key="backup script").exists()


def test_form_offers_only_the_roles_scopes_and_refuses_others(client, customer):
    finance = trusted(customer, User.Role.FINANCE)
    client.force_login(finance)
    url = reverse("api:settings_keys")
    offered = [value for value, _label in client.get(url).context["form"].fields["scopes"].choices]
    assert offered == ["account:read", "billing:read", "billing:write"]
    response = client.post(url, {"name": "x", "scopes": ["services:write"], "expires": "30"})
    assert response.status_code == 400 and response.context["form"].errors["scopes"]
    assert not ApiKey.objects.exists()


def test_bad_ip_list_is_a_form_error(client, owner):
    client.force_login(owner)
    response = client.post(reverse("api:settings_keys"), {"name": "x", "scopes": ["account:read"], "expires": "30",
                                                          "allowed_ips": "10.0.0.0/8\nnot-an-ip"})
    assert response.status_code == 400 and "Line 2" in str(response.context["form"].errors["allowed_ips"])
    assert not ApiKey.objects.exists()


def test_revoke_own_key_and_owner_revokes_a_trusted_users_key(client, owner, key_client):
    technical = trusted(owner.customer, User.Role.TECHNICAL)
    theirs = key_client(technical)
    mine = key_client(owner)
    client.force_login(technical)
    assert client.post(reverse("api:settings_key_revoke", args=[mine.api_key.pk])).status_code == 404
    client.force_login(owner)
    assert client.post(reverse("api:settings_key_revoke", args=[theirs.api_key.pk])).status_code == 302
    assert theirs.get("/api/v1/services").status_code == 401
    assert mine.get("/api/v1/services").status_code == 200


def test_another_customers_key_is_404(client, owner, other_owner, key_client):
    theirs = key_client(other_owner)
    client.force_login(owner)
    assert client.post(reverse("api:settings_key_revoke", args=[theirs.api_key.pk])).status_code == 404
    assert theirs.get("/api/v1/account").status_code == 200


def test_settings_navigation_lists_api_keys(client, owner):
    client.force_login(owner)
    page = client.get(reverse("accounts:settings_profile")).content.decode()
    assert reverse("api:settings_keys") in page
