"""Two-factor authentication: TOTP devices (django-otp) and their one-time recovery codes."""
import hashlib
import hmac
import re
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..models import User
from .activity import activity_record, security_change_notify, security_event_record


RECOVERY_CODE_COUNT = 10


def _recovery_code() -> str:
    raw = secrets.token_hex(5)  # 10 hex digits, shown as xxxxx-xxxxx
    return f"{raw[:5]}-{raw[5:]}"


RECOVERY_CODE_FORMAT = re.compile(r"^([0-9a-f]{5})-?([0-9a-f]{5})$")


def recovery_code_digest(code: str, *, key: str | None = None) -> str:
    """What is stored for a recovery code: a keyed hash, cut to fit django-otp's 16-character token
    column (64 bits of a secret-keyed HMAC over a 40-bit code). Nobody can read a code back."""
    return hmac.new(f"accounts.recovery-code:{key or settings.SECRET_KEY}".encode(), code.encode(),
                    hashlib.sha256).hexdigest()[:16]


@transaction.atomic
def totp_setup_start(*, user: User):
    """A fresh unconfirmed TOTP device (replacing an earlier unconfirmed one)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        raise ValidationError(_("Two-factor authentication is already on."), code="enabled")
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


@transaction.atomic
def totp_setup_confirm(*, user: User, token: str, ip: str | None = None) -> list[str]:
    """Confirm the device with a code from the app; returns the ten recovery codes (shown once)."""
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
    if device is None:
        raise ValidationError(_("Start the setup again."), code="no_device")
    if not device.verify_token(token.strip().replace(" ", "")):
        raise ValidationError({"token": _("The code is not correct. Check the time on your phone and try again.")},
                              code="wrong")
    device.confirmed = True
    device.save()
    StaticDevice.objects.filter(user=user).delete()
    static = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    codes = [_recovery_code() for _i in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=static, token=recovery_code_digest(code)) for code in codes])
    security_event_record(user=user, action="2fa_enabled", ip=ip,
                          change=gettext_lazy("Two-factor authentication turned on"))
    return codes


def otp_match(*, user: User, token: str):
    """The confirmed device that accepts `token` (a TOTP code or a recovery code, used up), else None."""
    from django_otp import match_token

    from django_otp.plugins.otp_static.models import StaticDevice

    token = (token or "").strip().replace(" ", "").lower()
    if not token:
        return None
    recovery = RECOVERY_CODE_FORMAT.match(token)
    if recovery is None:
        return match_token(user, token)
    code = f"{recovery[1]}-{recovery[2]}"
    for device in StaticDevice.objects.filter(user=user, confirmed=True):
        for key in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
            if device.verify_token(recovery_code_digest(code, key=key)):  # deletes the used code
                return device
    return None


@transaction.atomic
def two_factor_reset(*, user: User, staff: User) -> bool:
    """Staff turn off a login's second factor (lost phone, identity checked by phone); audited, and the
    customer is told. Returns False when the login had none."""
    from django_otp import devices_for_user

    devices = list(devices_for_user(user, confirmed=None))
    if not devices:
        return False
    for device in devices:
        device.delete()
    activity_record(action="2fa_reset_by_staff", customer=user.customer if user.customer_id else None, actor=staff,
                    details={"username": user.username})
    if user.customer_id:
        security_change_notify(user=user, change=gettext_lazy("Two-factor authentication turned off by support"))
    return True


@transaction.atomic
def totp_disable(*, user: User, password: str, token: str, ip: str | None = None) -> None:
    from django_otp import devices_for_user

    errors = {}
    if not user.check_password(password):
        errors["password"] = _("The password is not correct.")
    if otp_match(user=user, token=token) is None:
        errors["token"] = _("The code is not correct.")
    if errors:
        raise ValidationError(errors, code="invalid")
    for device in devices_for_user(user, confirmed=None):
        device.delete()
    security_event_record(user=user, action="2fa_disabled", ip=ip,
                          change=gettext_lazy("Two-factor authentication turned off"))
