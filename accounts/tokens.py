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


_INVITATION_SALT = "accounts.invitation"


def make_invitation_token(user) -> str:
    """Single use: bound to the current (unusable) password hash, which setting a password replaces."""
    return signing.dumps({"u": user.pk, "p": user.password[-12:]}, salt=_INVITATION_SALT, compress=True)


def read_invitation_token(token: str) -> int:
    """Return the user id; raise signing.SignatureExpired / signing.BadSignature (also when already used)."""
    from .models import User

    data = signing.loads(token, salt=_INVITATION_SALT, max_age=settings.INVITATION_MAX_AGE)
    user = User.objects.filter(pk=int(data["u"])).only("password").first()
    if user is None or user.password[-12:] != data["p"]:
        raise signing.BadSignature("invitation already used")
    return user.pk

