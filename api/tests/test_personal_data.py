"""API keys and webhook endpoints in "export my data" and in account erasure."""
import pytest

from accounts.personal_data import exporters
from accounts.services.deletion import customer_erase
from api.models import ApiKey, WebhookEndpoint

pytestmark = pytest.mark.django_db


def test_export_lists_keys_without_secrets_and_endpoints(owner, key_client):
    client = key_client(owner)
    WebhookEndpoint.objects.create(customer=owner.customer, url="https://hooks.example.com/x", events=["balance.low"],
                                   secret="whsec_c2VjcmV0")
    keys = exporters()["api_keys"](owner.customer)
    assert [row["prefix"] for row in keys] == [client.api_key.prefix]
    assert client.token not in str(keys) and client.api_key.secret_hash not in str(keys)
    hooks = exporters()["webhooks"](owner.customer)
    assert hooks[0]["url"] == "https://hooks.example.com/x" and "whsec" not in str(hooks)


def test_erasure_revokes_keys_and_deletes_endpoints(owner, key_client):
    client = key_client(owner)
    WebhookEndpoint.objects.create(customer=owner.customer, url="https://hooks.example.com/x", events=["balance.low"],
                                   secret="whsec_c2VjcmV0")
    customer_erase(customer=owner.customer, actor=None)
    assert client.get("/api/v1/account").status_code == 401
    key = ApiKey.objects.get()
    assert key.revoked_at is not None and key.name == ""
    assert not WebhookEndpoint.objects.exists()
