import re
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.models import ActivityEvent
from accounts.tests.factories import UserFactory
from notifications.kinds import Kind
from notifications.telegram.models import TelegramLink, TelegramLinkToken, TelegramOutbox

from .factories import deliver_pending, link_chat, post_update, update

pytestmark = pytest.mark.django_db
DEEP_LINK = re.compile(r"https://t\.me/PortalTestBot\?start=([A-Za-z0-9_-]{20,64})")



def press_link(client) -> str:
    response = client.post("/notifications/telegram/link/")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0") and "no-store" in response["Cache-Control"]
    return DEEP_LINK.search(response.content.decode()).group(1)


def test_link_token_is_single_use_and_the_bot_confirms(client, owner, bot_api):
    client.force_login(owner)
    token = press_link(client)
    assert TelegramLinkToken.objects.get().token_hash != token  # stored hashed

    assert post_update(client, update(1, chat_id=111, text=f"/start {token}")).json()["outcome"] == "linked"
    link = TelegramLink.objects.get()
    assert (link.user, link.customer, link.chat_id, link.telegram_username) == (owner, owner.customer, 111, "alice")
    assert Kind.TICKET_REPLY in link.kinds and Kind.NEWSLETTER not in link.kinds
    assert ActivityEvent.objects.filter(customer=owner.customer, action="telegram_linked").count() == 1
    deliver_pending()
    (confirmation,) = bot_api.sent()
    assert confirmation["chat_id"] == 111 and "now linked" in confirmation["text"]
    assert str(owner.customer.pk) in confirmation["text"]

    # The same token again, from another chat (someone who saw the link): refused, nothing moves.
    assert post_update(client, update(2, chat_id=222, text=f"/start {token}")).json()["outcome"] == "link_refused"
    assert list(TelegramLink.objects.values_list("chat_id", flat=True)) == [111]
    deliver_pending()
    refusal = bot_api.sent()[-1]
    assert refusal["chat_id"] == 222 and "expired or was already used" in refusal["text"]


def test_link_token_expires(client, owner, bot_api):
    client.force_login(owner)
    token = press_link(client)
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert post_update(client, update(1, chat_id=111, text=f"/start {token}")).json()["outcome"] == "link_refused"
    assert not TelegramLink.objects.exists()


def test_a_new_link_token_replaces_the_unused_one(client, owner, bot_api):
    client.force_login(owner)
    first = press_link(client)
    second = press_link(client)
    assert post_update(client, update(1, chat_id=111, text=f"/start {first}")).json()["outcome"] == "link_refused"
    assert post_update(client, update(2, chat_id=111, text=f"/start {second}")).json()["outcome"] == "linked"


def test_unknown_or_garbage_tokens_change_nothing(client, owner, bot_api):
    for number, text in enumerate(["/start nope", "/start " + "x" * 500, "/start", "/start@PortalTestBot"], 1):
        assert post_update(client, update(number, chat_id=111, text=text)).json()["outcome"] in ("link_refused", "help")
    assert not TelegramLink.objects.exists()


def test_a_chat_linked_by_another_user_moves_to_the_new_user(client, owner, bot_api):
    other = UserFactory()
    link_chat(other, chat_id=111)
    client.force_login(owner)
    token = press_link(client)
    post_update(client, update(1, chat_id=111, text=f"/start {token}"))
    assert TelegramLink.objects.get(chat_id=111).user == owner
    assert not TelegramLink.objects.filter(user=other).exists()


def test_htmx_link_returns_the_card_only(client, owner, bot_api):
    client.force_login(owner)
    response = client.post("/notifications/telegram/link/", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert 'id="telegram-link-card"' in body and "<html" not in body and DEEP_LINK.search(body)


def test_get_never_creates_a_token(client, owner, bot_api):
    client.force_login(owner)
    assert client.get("/notifications/telegram/link/").status_code == 405
    assert client.get("/notifications/telegram/").status_code == 200
    assert not TelegramLinkToken.objects.exists()


def test_unlink_from_the_portal_and_with_stop(client, owner, bot_api):
    link_chat(owner, chat_id=111)
    client.force_login(owner)
    assert "telegram-unlink" in client.get("/notifications/telegram/").content.decode()
    assert client.post("/notifications/telegram/unlink/").status_code == 302
    assert not TelegramLink.objects.exists()

    link_chat(owner, chat_id=111)
    assert post_update(client, update(1, chat_id=111, text="/stop")).json()["outcome"] == "unlinked"
    assert not TelegramLink.objects.exists()
    assert TelegramOutbox.objects.get(chat_id=111).customer is None  # the goodbye is not tied to the account


def test_kinds_offered_are_those_the_role_receives(client, owner, bot_api):
    finance = UserFactory(customer=owner.customer, role="finance")
    link_chat(finance, chat_id=333, kinds=[])
    client.force_login(finance)
    page = client.get("/notifications/telegram/").content.decode()
    assert 'data-kind="invoice_issued"' in page and 'data-kind="ticket_reply"' not in page
    assert 'data-kind="newsletter"' not in page  # the customer is not subscribed to it
    client.post("/notifications/telegram/kinds/", {"invoice_issued": "on", "ticket_reply": "on", "bogus": "on"})
    assert TelegramLink.objects.get(user=finance).kinds == [Kind.INVOICE_ISSUED]


def test_kinds_save_without_a_link_changes_nothing(client, owner, bot_api):
    client.force_login(owner)
    response = client.post("/notifications/telegram/kinds/", {"invoice_issued": "on"}, follow=True)
    assert "Link Telegram first" in response.content.decode()
    assert not TelegramLink.objects.exists()


def test_hidden_when_unconfigured(client, owner, settings):
    settings.TELEGRAM_BOT_TOKEN = ""
    client.force_login(owner)
    assert client.get("/notifications/telegram/").status_code == 404
    assert client.post("/notifications/telegram/link/").status_code == 404
    assert client.post("/notifications/telegram/webhook/", data="{}", content_type="application/json").status_code == 404
    assert "telegram-settings-link" not in client.get("/notifications/").content.decode()


def test_notifications_pages_link_to_telegram_when_configured(client, owner, bot_api):
    client.force_login(owner)
    assert "telegram-settings-link" in client.get("/notifications/").content.decode()
    assert "telegram-settings-link" in client.get("/notifications/subscriptions/").content.decode()
