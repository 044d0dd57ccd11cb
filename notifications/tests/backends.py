"""Email backends for tests that run delivery in several threads."""
import threading
import time

from django.core.mail.backends.base import BaseEmailBackend

SENT: list = []
_lock = threading.Lock()


class SlowRecordingBackend(BaseEmailBackend):
    """Records every message; the pause keeps a first sender inside its send while a second one races."""

    def send_messages(self, email_messages):
        time.sleep(0.3)
        with _lock:
            SENT.extend(email_messages)
        return len(email_messages)
