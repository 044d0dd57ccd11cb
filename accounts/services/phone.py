"""Mobile number verification: a hashed, expiring code sent by SMS or a call, with limited attempts."""
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import selectors
from ..models import PhoneVerification, User
from ..phone import verification_backend
from .activity import security_event_record, translated_later

logger = logging.getLogger(__name__)


@transaction.atomic
def phone_verification_start(*, user: User, phone: str, ip: str | None = None, method: str | None = None) -> PhoneVerification:
    """Save `phone` (E.164, already validated) as unverified and deliver a code to it by `method`
    ("sms" or "call", when the backend offers it; else the backend's default)."""
    user = User.objects.select_for_update().get(pk=user.pk)
    hour_ago = timezone.now() - timedelta(hours=1)
    if user.phone_verifications.filter(created_at__gte=hour_ago).count() >= settings.PHONE_CODES_PER_HOUR:
        raise ValidationError(_("Too many codes requested. Please try again in an hour."), code="rate_limited")
    if user.phone != phone or not user.phone_verified:
        user.phone, user.phone_verified = phone, False
        user.save(update_fields=["phone", "phone_verified"])
    backend = verification_backend()
    method = method if method in backend.methods else backend.method
    try:
        code = backend.deliver(phone, method=method)
    except Exception:
        logger.exception("phone verification delivery failed for user %s", user.pk)
        raise ValidationError(_("We could not reach the number right now. Please try again later."), code="delivery")
    user.phone_verifications.filter(verified_at__isnull=True).update(expires_at=timezone.now())
    return PhoneVerification.objects.create(
        user=user, phone=phone, method=method, code_hash=make_password(code),
        expires_at=timezone.now() + timedelta(seconds=settings.PHONE_CODE_TTL),
    )


def phone_verification_confirm(*, user: User, code: str, ip: str | None = None) -> None:
    """Check `code` against the live verification; a wrong code uses up one attempt (committed)."""
    with transaction.atomic():
        user = User.objects.select_for_update(of=("self",)).select_related("customer").get(pk=user.pk)
        pending = selectors.phone_verification_pending(user=user)
        if pending is None:
            raise ValidationError(_("The code has expired or too many wrong codes were entered. Request a new code."),
                                  code="expired")
        if check_password(code.strip(), pending.code_hash):
            pending.verified_at = timezone.now()
            pending.save(update_fields=["verified_at"])
            user.phone_verified = True
            user.save(update_fields=["phone_verified"])
            security_event_record(
                user=user, action="phone_verified", ip=ip, details={"phone": user.phone},
                change=translated_later(gettext_lazy("Mobile number %(phone)s verified"), phone=user.phone))
            return
        pending.attempts += 1
        pending.save(update_fields=["attempts"])
        left = settings.PHONE_CODE_MAX_ATTEMPTS - pending.attempts
    if left <= 0:
        raise ValidationError(_("Wrong code. No attempts left: request a new code."), code="exhausted")
    raise ValidationError(_("Wrong code. Attempts left: %(left)d.") % {"left": left}, code="wrong")
