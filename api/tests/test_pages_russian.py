"""The API keys and webhooks pages are fully Russian for a Russian customer."""
import re

import pytest
from django.urls import reverse

from accounts.models import Customer
from portal.tests.english import english_leftovers

from api.models import WebhookDelivery
from api.webhooks import webhook_deliver
from notifications.services import notify

from .test_webhooks import Receiver

pytestmark = pytest.mark.django_db


def _text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_api_pages_in_russian(client, owner, key_client, settings):
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    receiver = Receiver()
    try:
        Customer.objects.filter(pk=owner.customer_id).update(language="ru")
        key = key_client(owner).api_key
        client.force_login(owner)
        keys_page = client.post(reverse("api:settings_keys"), {"name": "скрипт", "scopes": ["account:read"], "expires": "30"})
        assert client.post(reverse("api:settings_webhooks"), {"url": receiver.url, "events": ["balance.low"]}).status_code == 200
        notify(customer=owner.customer, kind="low_balance", context={"balance": "1.00 EUR", "threshold": "5.00 EUR"})
        webhook_deliver(delivery_id=WebhookDelivery.objects.get().pk)
        hooks_page = client.get(reverse("api:settings_webhooks"))
    finally:
        receiver.server.shutdown()
    for response in (keys_page, hooks_page):
        assert response.status_code == 200
        text = _text(response.content.decode())
        assert english_leftovers(text, data=[key.name, owner.username, owner.get_full_name(), receiver.url]) == []
    assert "Доставлено" in _text(hooks_page.content.decode())
    assert "API-ключи" in _text(keys_page.content.decode()) and "Вебхуки" in _text(hooks_page.content.decode())
