"""The few Bot API calls the portal makes, over HTTPS to TELEGRAM_API_BASE (a fake server in tests)."""
import requests
from django.conf import settings


class BotApiError(Exception):
    def __init__(self, message: str, *, permanent: bool, retry_after: int | None = None, status: int | None = None):
        super().__init__(message)
        self.permanent = permanent  # retrying cannot help (chat not found, bot blocked, bad request)
        self.retry_after = retry_after
        self.status = status


def call(method: str, payload: dict) -> dict:
    """POST a Bot API method and return its `result`; BotApiError tells whether a retry may help."""
    url = f"{settings.TELEGRAM_API_BASE}/bot{settings.TELEGRAM_BOT_TOKEN}/{method}"
    try:
        response = requests.post(url, json=payload, timeout=settings.TELEGRAM_API_TIMEOUT)
    except requests.RequestException as error:
        # The URL holds the bot token: never let it reach logs or the outbox's last_error.
        raise BotApiError(f"{type(error).__name__} calling {method}", permanent=False) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.ok and body.get("ok"):
        return body.get("result")
    description = body.get("description") or f"HTTP {response.status_code}"
    retry_after = (body.get("parameters") or {}).get("retry_after")
    permanent = 400 <= response.status_code < 500 and response.status_code != 429
    raise BotApiError(f"{method}: {description}", permanent=permanent, retry_after=retry_after,
                      status=response.status_code)


def send_message(*, chat_id: int, text: str, reply_to_message_id: int | None = None) -> int:
    """Send plain text (no parse mode, so nothing needs escaping); returns Telegram's message_id."""
    payload = {"chat_id": chat_id, "text": text, "link_preview_options": {"is_disabled": True}}
    if reply_to_message_id:
        payload["reply_parameters"] = {"message_id": reply_to_message_id, "allow_sending_without_reply": True}
    return call("sendMessage", payload)["message_id"]


def set_webhook(*, url: str) -> None:
    call("setWebhook", {
        "url": url, "secret_token": settings.TELEGRAM_WEBHOOK_SECRET, "allowed_updates": ["message"],
        "drop_pending_updates": False,
    })
