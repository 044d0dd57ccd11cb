import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .factories import WEBHOOK_SECRET

BOT_TOKEN = "123456:TEST-token"


class FakeBotApi:
    """A Bot API on loopback: records every call and answers like Telegram (or as told to)."""

    def __init__(self):
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        self.next_message_id = 1000
        self.failures: list[tuple[int, dict]] = []  # (status, body) served before succeeding again
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def sent(self, method: str = "sendMessage") -> list[dict]:
        with self.lock:
            return [call["payload"] for call in self.calls if call["method"] == method]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                token, _sep, method = self.path.lstrip("/").partition("/")
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with fake.lock:
                    fake.calls.append({"token": token, "method": method, "payload": payload})
                    if fake.failures:
                        status, body = fake.failures.pop(0)
                    elif token != f"bot{BOT_TOKEN}":
                        status, body = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
                    else:
                        fake.next_message_id += 1
                        status, body = 200, {"ok": True, "result": {
                            "message_id": fake.next_message_id, "date": 1700000000,
                            "chat": {"id": payload.get("chat_id"), "type": "private"}, "text": payload.get("text"),
                        } if method == "sendMessage" else True}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def bot_api(settings):
    fake = FakeBotApi()
    fake.thread.start()
    settings.TELEGRAM_BOT_TOKEN = BOT_TOKEN
    settings.TELEGRAM_BOT_USERNAME = "PortalTestBot"
    settings.TELEGRAM_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.TELEGRAM_API_BASE = fake.base_url
    settings.TELEGRAM_API_TIMEOUT = 5
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture(autouse=True)
def queued_tasks(request, monkeypatch):
    """Record delivery tasks instead of publishing them to the shared Redis (tests using `celery_broker` publish)."""
    if "celery_broker" in request.fixturenames:
        yield None
        return
    from notifications.tasks import email_deliver_task
    from notifications.telegram.tasks import telegram_deliver_task

    queued: list[dict] = []
    monkeypatch.setattr(email_deliver_task, "apply_async", lambda **kwargs: None)
    monkeypatch.setattr(telegram_deliver_task, "apply_async", lambda **kwargs: queued.append(kwargs))
    yield queued
