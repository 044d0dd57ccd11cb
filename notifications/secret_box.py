"""Encryption of stored mail that carries a secret link (password reset, invitation, verification).

Staff read the outbox in admin and could filter on its text; such rows hold only Fernet ciphertext,
decrypted at send time. The key derives from SECRET_KEY (and SECRET_KEY_FALLBACKS, so a rotation
does not strand mail still in the queue).
"""
import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

SEALED_PREFIX = "sealed:"


def _fernet(secret: str) -> Fernet:
    digest = hashlib.sha256(f"notifications.outbox-secret:{secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _box() -> MultiFernet:
    return MultiFernet([_fernet(key) for key in (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ()))])


def seal(text: str) -> str:
    return SEALED_PREFIX + _box().encrypt(text.encode()).decode() if text else ""


def unseal(stored: str) -> str:
    """The plain text; "" when the key that sealed it is gone (the link is useless to send anyway)."""
    if not stored.startswith(SEALED_PREFIX):
        return stored
    try:
        return _box().decrypt(stored[len(SEALED_PREFIX):].encode()).decode()
    except InvalidToken:
        return ""
