from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from notifications.telegram import tasks
from notifications.telegram.models import TelegramLink, TelegramLinkToken, TelegramOutbox, TelegramUpdate
from notifications.telegram.services import link_token_create

from .factories import post_update, update

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("secret", ["forged-secret", "", "webhook-secret-for-test", "webhook-secret-for-testsX"])
def test_a_forged_webhook_secret_is_refused_and_nothing_recorded(client, owner, bot_api, secret):
    token, _expires = link_token_create(user=owner)
    response = post_update(client, update(1, chat_id=111, text=f"/start {token}"), secret=secret)
    assert response.status_code == 403
    assert not TelegramUpdate.objects.exists() and not TelegramLink.objects.exists()
    assert not TelegramOutbox.objects.exists()
    assert TelegramLinkToken.objects.get().used_at is None  # the real owner can still use it


def test_missing_secret_header_is_refused(client, owner, bot_api):
    response = client.post("/notifications/telegram/webhook/", data="{}", content_type="application/json")
    assert response.status_code == 403 and not TelegramUpdate.objects.exists()


def test_webhook_is_post_only_and_csrf_exempt(client, bot_api):
    assert client.get("/notifications/telegram/webhook/").status_code == 405
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert post_update(strict, update(1, chat_id=111, text="hello")).status_code == 200


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"message": {}}', '{"update_id": "7"}'])
def test_malformed_updates_are_rejected(client, bot_api, body):
    response = client.post("/notifications/telegram/webhook/", data=body, content_type="application/json",
                           HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN="webhook-secret-for-tests")
    assert response.status_code == 400
    assert not TelegramUpdate.objects.exists()


def test_a_redelivered_update_is_handled_once(client, bot_api):
    payload = update(42, chat_id=111, text="hello")
    assert post_update(client, payload).json()["outcome"] == "unlinked_chat"
    assert post_update(client, payload).json()["outcome"] == "duplicate"
    assert TelegramUpdate.objects.get().outcome == "unlinked_chat"
    assert TelegramOutbox.objects.count() == 1  # one polite answer, not two


def test_group_chats_and_edits_are_logged_and_ignored(client, bot_api):
    group = update(1, chat_id=-100, text="/start abc")
    group["message"]["chat"]["type"] = "group"
    assert post_update(client, group).json()["outcome"] == "ignored"
    assert post_update(client, {"update_id": 2, "edited_message": {"text": "x"}}).json()["outcome"] == "ignored"
    assert TelegramUpdate.objects.count() == 2 and not TelegramOutbox.objects.exists()


def test_an_unlinked_chat_is_answered_in_its_language(client, bot_api):
    payload = update(1, chat_id=111, text="hi")
    payload["message"]["from"]["language_code"] = "ru"
    post_update(client, payload)
    assert "не привязан" in TelegramOutbox.objects.get().text


def test_odd_field_types_never_cause_a_server_error(client, owner, bot_api):
    from .factories import link_chat

    link_chat(owner, chat_id=111)
    assert post_update(client, {"update_id": 2**70, "message": {}}).status_code == 400
    odd = update(3, chat_id=111, text="x", reply_to=2**70)
    odd["message"].update({"from": ["not", "a", "dict"], "message_id": 2**80})
    assert post_update(client, odd).json()["outcome"] == "not_a_reply"
    odd = update(4, chat_id=111, reply_to=2**70)
    odd["message"]["text"] = 12345
    assert post_update(client, odd).json()["outcome"] == "reply_refused"
    start = update(5, chat_id=2**70, text="/start abc")
    assert post_update(client, start).json()["outcome"] == "ignored"


def test_stored_updates_are_deleted_by_the_sweeper_after_the_retention(client, bot_api, settings):
    settings.TELEGRAM_UPDATE_RETENTION_DAYS = 30
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        post_update(client, update(1, chat_id=111, text="my server 203.0.113.5 is down"))
    with time_machine.travel(start + timedelta(days=10), tick=False):
        post_update(client, update(2, chat_id=111, text="still down"))
    with time_machine.travel(start + timedelta(days=30) - timedelta(seconds=1), tick=False):
        tasks.telegram_outbox_sweep_task()
        assert TelegramUpdate.objects.count() == 2  # not a second early
    with time_machine.travel(start + timedelta(days=30, seconds=1), tick=False):
        tasks.telegram_outbox_sweep_task()
        assert list(TelegramUpdate.objects.values_list("update_id", flat=True)) == [2]
    with time_machine.travel(start + timedelta(days=41), tick=False):
        call_command("send_telegram_outbox", stdout=StringIO())  # the cron fallback prunes too
        assert not TelegramUpdate.objects.exists()
        # A redelivery after the retention is treated as new: far past Telegram's 24-hour redelivery window.
        assert post_update(client, update(2, chat_id=111, text="still down")).json()["outcome"] == "unlinked_chat"
