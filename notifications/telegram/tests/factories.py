import json

from notifications.telegram.models import TelegramLink
from notifications.telegram.selectors import DEFAULT_KINDS, kinds_available

WEBHOOK_SECRET = "webhook-secret-for-tests"


def link_chat(user, chat_id: int, kinds=None) -> TelegramLink:
    """A linked chat as /start would leave it (for tests that are not about linking)."""
    if kinds is None:
        kinds = [kind for kind in kinds_available(user) if kind in DEFAULT_KINDS]
    return TelegramLink.objects.create(user=user, customer=user.customer, chat_id=chat_id, telegram_username=f"u{chat_id}",
                                       kinds=list(kinds))


def update(update_id: int, chat_id: int, text: str = "", *, reply_to: int | None = None, username: str = "alice",
           message_id: int | None = None, **extra) -> dict:
    message = {
        "message_id": message_id or update_id, "date": 1700000000, "text": text,
        "chat": {"id": chat_id, "type": "private", "first_name": "Alice"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "Alice", "username": username, "language_code": "en"},
        **extra,
    }
    if reply_to is not None:
        message["reply_to_message"] = {"message_id": reply_to, "date": 1700000000, "chat": message["chat"],
                                       "text": "…"}
    return {"update_id": update_id, "message": message}


def post_update(client, payload: dict, *, secret: str = WEBHOOK_SECRET):
    return client.post("/notifications/telegram/webhook/", data=json.dumps(payload), content_type="application/json",
                       HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=secret)


def deliver_pending() -> list[str]:
    """What the worker does with the queued tasks (on_commit never fires inside a test's transaction)."""
    from notifications.telegram.models import TelegramOutbox
    from notifications.telegram.services import telegram_deliver

    pending = TelegramOutbox.objects.filter(status=TelegramOutbox.Status.PENDING).order_by("pk")
    return [telegram_deliver(outbox_id=pk).outcome for pk in pending.values_list("pk", flat=True)]
