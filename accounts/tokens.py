"""Signed, expiring tokens for email verification links (no table needed, tamper-proof)."""
from django.conf import settings
from django.core import signing

_SALT = "accounts.email-verification"


def make_email_token(*, user_id: int, email: str) -> str:
    return signing.dumps({"u": user_id, "e": email.lower()}, salt=_SALT, compress=True)


def read_email_token(token: str) -> tuple[int, str]:
    """Return (user_id, email); raise signing.SignatureExpired / signing.BadSignature."""
    data = signing.loads(token, salt=_SALT, max_age=settings.EMAIL_VERIFICATION_MAX_AGE)
    return int(data["u"]), str(data["e"])
