import csv
import functools
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import zipfile
import zoneinfo
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.topbar import topbar_changed, topbar_changed_all

from .ip_allowlist import AllowlistError, ip_permitted, parse_allowlist
from . import personal_data
from .models import (
    ActivityEvent, Customer, DataExport, DeletionRequest, PhoneVerification, PolicyAcceptance, PolicyVersion, User,
)
from .phone import verification_backend
from .tokens import make_email_token, make_invitation_token, read_email_token, read_invitation_token

logger = logging.getLogger(__name__)


@transaction.atomic
def customer_register(
    *,
    username: str,
    email: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    language: str = "en",
    currency: str | None = None,
) -> User:
    """Create a customer account with its owner login and send the verification link after commit."""
    customer = Customer.objects.create(
        language=language,
        currency=currency or settings.DEFAULT_CURRENCY,
        site_currency=currency or settings.DEFAULT_CURRENCY,
    )
    user = User(
        username=username,
        email=email.strip(),
        first_name=first_name,
        last_name=last_name,
        customer=customer,
        role=User.Role.OWNER,
    )
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    email_verification_send(user=user)
    return user


def email_link_send(*, purpose: str, token: str, to: str, subject: str, body_text: str, body_html: str,
                    customer: Customer | None) -> None:
    """Mail a signed link through notifications' outbox (`email_requested`, in the caller's transaction).

    One mail per link however often the call is retried; the key holds the token's hash, never the token.
    """
    from .signals import email_requested

    email_requested.send(sender=User, to=to, subject=subject, body_text=body_text, body_html=body_html,
                         dedupe_key=f"accounts:{purpose}:{hashlib.sha256(token.encode()).hexdigest()}",
                         customer=customer, contains_secret=True)


def email_verification_send(*, user: User, email: str | None = None) -> None:
    """Email a signed link that proves `email` (default: the account email) belongs to the user."""
    address = email or user.email
    token = make_email_token(user_id=user.pk, email=address)
    link = settings.PORTAL_BASE_URL + reverse("accounts:verify_email", args=[token])
    language = user.customer.language if user.customer_id else settings.LANGUAGE_CODE
    with translation.override(language):
        context = {"user": user, "link": link, "portal_name": settings.PORTAL_NAME}
        subject = _("Confirm your email address for %(portal)s") % {"portal": settings.PORTAL_NAME}
        body = render_to_string("accounts/email/verify_email.txt", context)
        html = render_to_string("accounts/email/verify_email.html", context)
    email_link_send(purpose="verify-email", token=token, to=address, subject=subject, body_text=body, body_html=html,
                    customer=user.customer)


@transaction.atomic
def email_verify(*, token: str) -> User:
    """Mark the address in `token` verified (and make it the account email if it was a change)."""
    try:
        user_id, email = read_email_token(token)
    except signing.SignatureExpired:
        raise ValidationError(_("This verification link has expired. Request a new one."), code="expired")
    except signing.BadSignature:
        raise ValidationError(_("This verification link is invalid."), code="invalid")
    user = User.objects.select_for_update().filter(pk=user_id).first()
    if user is None:
        raise ValidationError(_("This verification link is invalid."), code="invalid")
    changed_from = ""
    if user.email.lower() != email:
        if user.pending_email.lower() != email:
            # Only the latest requested address may replace the account email.
            raise ValidationError(_("This verification link is no longer valid."), code="superseded")
        if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
            raise ValidationError(_("This email address is already used by another account."), code="taken")
        changed_from = user.email
        user.email = user.pending_email
    if user.pending_email.lower() == email:
        user.pending_email = ""
    user.email_verified = True
    user.save(update_fields=["email", "email_verified", "pending_email"])
    if changed_from and user.customer_id:
        activity_record(action="email_changed", customer=user.customer, actor=user,
                        details={"old": changed_from, "new": user.email})
        security_change_notify(user=user, change=_later(gettext_lazy("Email address changed to %(email)s"), email=user.email),
                               extra_email=changed_from)
    return user


@transaction.atomic
def customer_set_language(*, customer: Customer, language: str) -> None:
    if language not in dict(settings.LANGUAGES):
        raise ValidationError(_("Unsupported language."))
    Customer.objects.filter(pk=customer.pk).update(language=language)
    customer.language = language


def activity_record(
    *,
    action: str,
    customer: Customer | None = None,
    actor: User | None = None,
    ip: str | None = None,
    details: dict | None = None,
    visible_to_customer: bool = True,
):
    """Append one audit/activity row in the caller's transaction. `details` must be JSON-serializable."""
    from .models import ActivityEvent

    return ActivityEvent.objects.create(
        action=action,
        customer=customer,
        actor=actor if actor is not None and actor.pk else None,
        ip=ip or None,
        details=details or {},
        visible_to_customer=visible_to_customer,
    )


# --- Notifications bridge ------------------------------------------------------------------------

def _notify(*, customer: Customer, kind: str, context: dict, link: str = "") -> None:
    """Raise `security_event`; notifications (above us in the app map) subscribes and sends it."""
    from .signals import security_event

    security_event.send(sender=Customer, customer=customer, kind=kind, context=context, link=link)


def _later(message, **params):
    """A change description rendered later, in the language of the customer who receives it."""
    return lambda: str(message) % {key: str(value) for key, value in params.items()}


def _when(customer: Customer) -> str:
    """Now, in the customer's time zone (emails are read there too)."""
    from .middleware import customer_zone

    return timezone.localtime(timezone.now(), customer_zone(customer)).strftime("%Y-%m-%d %H:%M %Z")


def security_change_notify(*, user: User, change, ip: str | None = None, extra_email: str = "") -> None:
    """Tell the account about a security-relevant change (mandatory kind `security_change`).

    `change` is a lazy string or a `_later(...)` callable, translated in the customer's language.
    """
    with translation.override(user.customer.language):
        text = change() if callable(change) else str(change)
    context = {"change": text, "username": user.username, "ip": ip or "", "when": _when(user.customer)}
    if extra_email:
        context["previous_email"] = extra_email
    _notify(customer=user.customer, kind="security_change", context=context, link=reverse("accounts:activity"))


def _security_event(*, user: User, action: str, change: str, ip: str | None, details: dict | None = None,
                    actor: User | None = None) -> None:
    activity_record(action=action, customer=user.customer if user.customer_id else None, actor=actor or user, ip=ip,
                    details=details)
    if user.customer_id:  # staff logins have no customer inbox: the audit row is the record
        security_change_notify(user=user, change=change, ip=ip)


# --- Logins ------------------------------------------------------------------------------------------

def login_record(*, user: User, ip: str, user_agent: str = "") -> None:
    """A successful login: activity row and, if the customer asked for it, an alert."""
    if not user.customer_id:
        return
    with transaction.atomic():
        activity_record(action="login", customer=user.customer, actor=user, ip=ip)
        if user.customer.login_alerts:
            _notify(customer=user.customer, kind="security_login", context={
                "username": user.username, "ip": ip or "", "when": _when(user.customer), "user_agent": user_agent[:200],
            }, link=reverse("accounts:activity"))


def login_failure_record(*, username: str, ip: str, reason: str = "password") -> None:
    field = "email__iexact" if "@" in (username or "") else "username__iexact"
    user = User.objects.select_related("customer").filter(**{field: (username or "").strip()}).first() if username else None
    if user is None or not user.customer_id:
        return
    activity_record(action="login_failed", customer=user.customer, actor=user, ip=ip, details={"reason": reason})


# --- Contact information and email change ---------------------------------------------------------

@transaction.atomic
def user_update_contact(*, user: User, first_name: str, last_name: str, email: str, ip: str | None = None) -> bool:
    """Save the names; a different email is only requested (link to the new address). True if requested."""
    user.first_name, user.last_name = first_name.strip(), last_name.strip()
    user.full_clean(exclude=["password", "username", "email"])
    user.save(update_fields=["first_name", "last_name"])
    email = email.strip()
    if email.lower() == user.email.lower():
        if user.pending_email:
            user.pending_email = ""
            user.save(update_fields=["pending_email"])
        return False
    if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
        raise ValidationError({"email": _("This email address is already used by another account.")})
    user.pending_email = email
    user.save(update_fields=["pending_email"])
    activity_record(action="email_change_requested", customer=user.customer, actor=user, ip=ip, details={"new": email})
    email_verification_send(user=user, email=email)
    return True


# --- Mobile number -------------------------------------------------------------------------------------

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


def phone_verification_pending(*, user: User) -> PhoneVerification | None:
    return (user.phone_verifications.filter(verified_at__isnull=True, expires_at__gt=timezone.now(), phone=user.phone,
                                            attempts__lt=settings.PHONE_CODE_MAX_ATTEMPTS).first())


def phone_verification_confirm(*, user: User, code: str, ip: str | None = None) -> None:
    """Check `code` against the live verification; a wrong code uses up one attempt (committed)."""
    with transaction.atomic():
        user = User.objects.select_for_update(of=("self",)).select_related("customer").get(pk=user.pk)
        pending = phone_verification_pending(user=user)
        if pending is None:
            raise ValidationError(_("The code has expired or too many wrong codes were entered. Request a new code."),
                                  code="expired")
        if check_password(code.strip(), pending.code_hash):
            pending.verified_at = timezone.now()
            pending.save(update_fields=["verified_at"])
            user.phone_verified = True
            user.save(update_fields=["phone_verified"])
            _security_event(user=user, action="phone_verified", ip=ip, details={"phone": user.phone},
                            change=_later(gettext_lazy("Mobile number %(phone)s verified"), phone=user.phone))
            return
        pending.attempts += 1
        pending.save(update_fields=["attempts"])
        left = settings.PHONE_CODE_MAX_ATTEMPTS - pending.attempts
    if left <= 0:
        raise ValidationError(_("Wrong code. No attempts left: request a new code."), code="exhausted")
    raise ValidationError(_("Wrong code. Attempts left: %(left)d.") % {"left": left}, code="wrong")


# --- Customer profile ----------------------------------------------------------------------------------

def _locked_customer(customer: Customer) -> Customer:
    # NO KEY UPDATE (docs/ARCHITECTURE.md, lock order): serialises writers of the customer row without
    # blocking the foreign-key checks of rows other transactions insert for it (invoices, notifications)
    # while they hold order or account locks - a FOR UPDATE here could deadlock with them.
    return Customer.objects.select_for_update(no_key=True).get(pk=customer.pk)


@transaction.atomic
def customer_update_address(*, customer: Customer, actor: User, street: str, city: str, postcode: str,
                            country: str = "", ip: str | None = None) -> Customer:
    """The country is set once; afterwards only staff change it (the customer opens a ticket)."""
    locked = _locked_customer(customer)
    locked.street, locked.city, locked.postcode = street.strip(), city.strip(), postcode.strip()
    update = ["street", "city", "postcode"]
    if not locked.country and country:
        locked.country = country.upper()
        update.append("country")
    locked.full_clean()
    locked.save(update_fields=update)
    activity_record(action="address_changed", customer=locked, actor=actor, ip=ip)
    return locked


@transaction.atomic
def customer_update_profile_type(*, customer: Customer, actor: User, profile_type: str, company_name: str = "",
                                 company_registration_number: str = "", company_vat_number: str = "",
                                 ip: str | None = None) -> Customer:
    """Choosing (or changing) a company sends the profile to staff verification."""
    locked = _locked_customer(customer)
    before = (locked.profile_type, locked.company_name, locked.company_registration_number, locked.company_vat_number)
    locked.profile_type = profile_type
    if profile_type == Customer.ProfileType.COMPANY:
        locked.company_name = company_name.strip()
        locked.company_registration_number = company_registration_number.strip()
        locked.company_vat_number = company_vat_number.strip()
        after = (locked.profile_type, locked.company_name, locked.company_registration_number, locked.company_vat_number)
        if after != before or locked.verification_status in (Customer.Verification.NOT_REQUIRED, ""):
            locked.verification_status = Customer.Verification.PENDING
            locked.verification_note = ""
    else:
        locked.verification_status = Customer.Verification.NOT_REQUIRED
        locked.verification_note = ""
    locked.full_clean()
    locked.save()
    if (locked.profile_type, locked.company_name, locked.company_registration_number, locked.company_vat_number) != before:
        activity_record(action="profile_type_changed", customer=locked, actor=actor, ip=ip,
                        details={"profile_type": locked.profile_type, "status": locked.verification_status})
    return locked


@transaction.atomic
def customer_update_preferences(*, customer: Customer, actor: User, newsletter: bool, low_balance_threshold: Decimal,
                                auto_renew_default: bool, site_currency: str, pay_without_login: bool,
                                language: str, time_zone: str | None = None,
                                threshold_currency: str | None = None) -> Customer:
    """`threshold_currency`: the account currency the threshold was entered in (the form's); refused if
    the account currency changed meanwhile, since the number would mean another amount."""
    if site_currency not in settings.CURRENCIES:
        raise ValidationError({"site_currency": _("Unsupported currency.")})
    if time_zone is not None and time_zone not in available_time_zones():
        raise ValidationError({"time_zone": _("Unknown time zone.")})
    if low_balance_threshold < 0:
        raise ValidationError({"low_balance_threshold": _("The threshold cannot be negative.")})
    locked = _locked_customer(customer)
    if threshold_currency and threshold_currency != locked.currency:
        raise ValidationError({"low_balance_threshold": _(
            "Your account currency is now %(currency)s. Check the threshold and save again.") % {"currency": locked.currency}})
    locked.newsletter, locked.low_balance_threshold = newsletter, low_balance_threshold
    locked.low_balance_threshold_currency = locked.currency
    locked.auto_renew_default, locked.site_currency = auto_renew_default, site_currency
    locked.pay_without_login, locked.language = pay_without_login, language
    locked.timezone = time_zone or locked.timezone
    locked.full_clean()
    locked.save(update_fields=["newsletter", "low_balance_threshold", "low_balance_threshold_currency", "auto_renew_default", "site_currency",
                               "pay_without_login", "language", "timezone"])
    activity_record(action="preferences_changed", customer=locked, actor=actor)
    return locked


@transaction.atomic
def customer_update_email_routing(*, customer: Customer, actor: User, email_billing: str, email_support: str,
                                  email_abuse: str) -> Customer:
    locked = _locked_customer(customer)
    locked.email_billing, locked.email_support, locked.email_abuse = (
        email_billing.strip(), email_support.strip(), email_abuse.strip())
    locked.full_clean()
    locked.save(update_fields=["email_billing", "email_support", "email_abuse"])
    activity_record(action="email_routing_changed", customer=locked, actor=actor)
    return locked


# --- Security --------------------------------------------------------------------------------------------

@transaction.atomic
def code_word_set(*, customer: Customer, actor: User, code_word: str, ip: str | None = None) -> None:
    """Write-once: a second call fails even when two requests race (row lock)."""
    locked = _locked_customer(customer)
    if locked.code_word_hash:
        raise ValidationError(_("The code word is already set. Contact support to change it."), code="already_set")
    code_word = code_word.strip()
    if len(code_word) < 4:
        raise ValidationError(_("Use at least 4 characters."), code="too_short")
    locked.code_word_hash = make_password(code_word.casefold())
    locked.save(update_fields=["code_word_hash"])
    customer.code_word_hash = locked.code_word_hash
    _security_event(user=actor, action="code_word_set", ip=ip, change=gettext_lazy("Code word set"))


@transaction.atomic
def code_word_check(*, customer: Customer, staff: User, candidate: str) -> bool:
    """Staff compare what a caller says with the stored hash; every check is audited."""
    matches = bool(customer.code_word_hash) and check_password(candidate.strip().casefold(), customer.code_word_hash)
    activity_record(action="code_word_checked", customer=customer, actor=staff, visible_to_customer=False,
                    details={"matches": matches})
    return matches


@transaction.atomic
def ip_allowlist_set(*, customer: Customer, actor: User, text: str, current_ip: str, lockout_confirmed: bool) -> Customer:
    """Validate the whole list (nothing saved on any bad line) and refuse to lock the customer out silently."""
    try:
        parse_allowlist(text)
    except AllowlistError as error:
        raise ValidationError({"ip_allowlist": [str(e) for e in error.errors]}, code="invalid")
    normalized = "\n".join(line.rstrip() for line in text.strip().splitlines())
    if normalized and not ip_permitted(normalized, current_ip) and not lockout_confirmed:
        raise ValidationError({"confirm_lockout": _(
            "Your current IP address %(ip)s is not in the list: after saving you will lose access. "
            "Tick the confirmation to save anyway.") % {"ip": current_ip}}, code="lockout")
    locked = _locked_customer(customer)
    if locked.ip_allowlist == normalized:
        return locked
    locked.ip_allowlist = normalized
    locked.save(update_fields=["ip_allowlist"])
    _security_event(user=actor, action="ip_allowlist_changed", ip=current_ip,
                    details={"entries": len(parse_allowlist(normalized))},
                    change=gettext_lazy("IP restriction list changed") if normalized else gettext_lazy("IP restriction removed"))
    return locked


@transaction.atomic
def ip_allowlist_clear(*, customer: Customer, staff: User) -> None:
    locked = _locked_customer(customer)
    locked.ip_allowlist = ""
    locked.save(update_fields=["ip_allowlist"])
    activity_record(action="ip_allowlist_cleared", customer=locked, actor=staff, visible_to_customer=False)


@transaction.atomic
def customer_update_login_options(*, customer: Customer, actor: User, show_last_login: bool, login_alerts: bool,
                                  ip: str | None = None) -> Customer:
    locked = _locked_customer(customer)
    changed = locked.login_alerts != login_alerts
    locked.show_last_login, locked.login_alerts = show_last_login, login_alerts
    locked.save(update_fields=["show_last_login", "login_alerts"])
    if changed:
        _security_event(user=actor, action="login_alerts_changed", ip=ip, details={"enabled": login_alerts},
                        change=gettext_lazy("Login notifications turned on") if login_alerts
                        else gettext_lazy("Login notifications turned off"))
    return locked


def password_changed_record(*, user: User, ip: str | None) -> None:
    with transaction.atomic():
        _security_event(user=user, action="password_changed", ip=ip, change=gettext_lazy("Password changed"))


# --- Two-factor authentication ------------------------------------------------------------------------

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
    _security_event(user=user, action="2fa_enabled", ip=ip, change=gettext_lazy("Two-factor authentication turned on"))
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
def two_factor_reset_by_staff(*, user: User, staff: User) -> bool:
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
    _security_event(user=user, action="2fa_disabled", ip=ip, change=gettext_lazy("Two-factor authentication turned off"))


def otp_enabled(user: User) -> bool:
    from django_otp import user_has_device

    return user_has_device(user, confirmed=True)


# --- Trusted users -----------------------------------------------------------------------------------------

def _active_owner_count(customer: Customer) -> int:
    return customer.users.filter(role=User.Role.OWNER, is_active=True).count()


@transaction.atomic
def trusted_user_invite(*, customer: Customer, actor: User, username: str, email: str, first_name: str,
                        last_name: str, role: str, ip: str | None = None) -> User:
    """A new login for the same customer; the person sets their own password through the emailed link."""
    _locked_customer(customer)
    if role not in User.Role.values:
        raise ValidationError({"role": _("Unknown role.")})
    user = User(username=username.strip(), email=email.strip(), first_name=first_name.strip(),
                last_name=last_name.strip(), customer=customer, role=role)
    user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    activity_record(action="trusted_user_added", customer=customer, actor=actor, ip=ip,
                    details={"username": user.username, "role": role})
    invitation_send(user=user, invited_by=actor)
    return user


def invitation_send(*, user: User, invited_by: User) -> None:
    token = make_invitation_token(user)
    link = settings.PORTAL_BASE_URL + reverse("accounts:invitation_accept", args=[token])
    with translation.override(user.customer.language):
        context = {"user": user, "inviter": invited_by, "link": link, "portal_name": settings.PORTAL_NAME,
                   "role": user.get_role_display(), "client_id": user.customer_id,
                   "days": settings.INVITATION_MAX_AGE // 86400}
        subject = _("%(name)s invited you to their %(portal)s account") % {
            "name": invited_by.get_full_name() or invited_by.username, "portal": settings.PORTAL_NAME}
        body = render_to_string("accounts/email/invitation.txt", context)
        html = render_to_string("accounts/email/invitation.html", context)
    email_link_send(purpose="invitation", token=token, to=user.email, subject=subject, body_text=body, body_html=html,
                    customer=user.customer)


def invitation_user(*, token: str) -> User:
    try:
        user_id = read_invitation_token(token)
    except signing.SignatureExpired:
        raise ValidationError(_("This invitation has expired. Ask the account owner to send a new one."), code="expired")
    except signing.BadSignature:
        raise ValidationError(_("This invitation link is invalid or has already been used."), code="invalid")
    user = User.objects.select_related("customer").filter(pk=user_id, is_active=True).first()
    if user is None or user.has_usable_password():
        raise ValidationError(_("This invitation link is invalid or has already been used."), code="invalid")
    return user


@transaction.atomic
def invitation_accept(*, token: str, password: str) -> User:
    user = invitation_user(token=token)
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.has_usable_password():
        raise ValidationError(_("This invitation link is invalid or has already been used."), code="invalid")
    user.set_password(password)
    user.email_verified = True  # the link reached this address
    user.save(update_fields=["password", "email_verified"])
    activity_record(action="invitation_accepted", customer=user.customer, actor=user)
    return user


@transaction.atomic
def trusted_user_set_role(*, customer: Customer, actor: User, user_id: int, role: str, ip: str | None = None) -> User:
    _locked_customer(customer)
    user = customer.users.select_for_update().get(pk=user_id)
    if role not in User.Role.values:
        raise ValidationError(_("Unknown role."))
    if user.pk == actor.pk:
        raise ValidationError(_("You cannot change your own role."), code="self")
    if user.role == role:
        return user
    if user.role == User.Role.OWNER and user.is_active and _active_owner_count(customer) <= 1:
        raise ValidationError(_("The account must keep at least one owner."), code="last_owner")
    old = user.role
    user.role = role
    user.save(update_fields=["role"])
    activity_record(action="trusted_user_role_changed", customer=customer, actor=actor, ip=ip,
                    details={"username": user.username, "old": old, "new": role})
    security_change_notify(user=actor, change=_later(
        gettext_lazy("Role of %(user)s changed to %(role)s"), user=user.username, role=User.Role(role).label), ip=ip)
    return user


@transaction.atomic
def trusted_user_revoke(*, customer: Customer, actor: User, user_id: int, ip: str | None = None) -> User:
    """Deactivate the login: its sessions stop working at once (the auth backend refuses inactive users)."""
    _locked_customer(customer)
    user = customer.users.select_for_update().get(pk=user_id)
    if user.pk == actor.pk:
        raise ValidationError(_("You cannot revoke your own access."), code="self")
    if not user.is_active:
        return user
    if user.role == User.Role.OWNER and _active_owner_count(customer) <= 1:
        raise ValidationError(_("The account must keep at least one owner."), code="last_owner")
    user.is_active = False
    user.save(update_fields=["is_active"])
    activity_record(action="trusted_user_revoked", customer=customer, actor=actor, ip=ip,
                    details={"username": user.username})
    security_change_notify(user=actor, change=_later(
        gettext_lazy("Access of %(user)s revoked"), user=user.username), ip=ip)
    return user


# --- Staff actions (admin) ----------------------------------------------------------------------------------

@transaction.atomic
def company_verify(*, customer: Customer, staff: User) -> Customer:
    locked = _locked_customer(customer)
    if locked.profile_type != Customer.ProfileType.COMPANY:
        raise ValidationError(_("Only company profiles are verified."), code="not_company")
    locked.verification_status, locked.verification_note = Customer.Verification.VERIFIED, ""
    locked.save(update_fields=["verification_status", "verification_note"])
    activity_record(action="company_verified", customer=locked, actor=staff, visible_to_customer=False)
    return locked


@transaction.atomic
def company_reject(*, customer: Customer, staff: User, reason: str) -> Customer:
    if not reason.strip():
        raise ValidationError(_("Give the reason the customer will see."), code="no_reason")
    locked = _locked_customer(customer)
    if locked.profile_type != Customer.ProfileType.COMPANY:
        raise ValidationError(_("Only company profiles are verified."), code="not_company")
    locked.verification_status, locked.verification_note = Customer.Verification.REJECTED, reason.strip()
    locked.save(update_fields=["verification_status", "verification_note"])
    activity_record(action="company_rejected", customer=locked, actor=staff, visible_to_customer=False,
                    details={"reason": reason.strip()})
    return locked


# --- Time zone and theme ------------------------------------------------------------------------------

@functools.cache
def available_time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@transaction.atomic
def user_set_theme(*, user: User, theme: str) -> None:
    if theme not in User.Theme.values:
        raise ValidationError(_("Unknown theme."), code="invalid")
    User.objects.filter(pk=user.pk).update(theme=theme)
    user.theme = theme


# --- Avatar ---------------------------------------------------------------------------------------------

@transaction.atomic
def user_avatar_set(*, user: User, upload) -> None:
    """Replace the avatar with our own re-encoded copy of `upload` (checked by content, EXIF dropped)."""
    from django.core.files.base import ContentFile

    from .avatars import avatar_reencode

    data, extension = avatar_reencode(upload)
    locked = User.objects.select_for_update().get(pk=user.pk)
    old = locked.avatar.name
    locked.avatar.save(f"avatar.{extension}", ContentFile(data), save=False)
    locked.save(update_fields=["avatar"])
    user.avatar = locked.avatar
    if old:
        transaction.on_commit(functools.partial(locked.avatar.storage.delete, old))


@transaction.atomic
def user_avatar_remove(*, user: User) -> None:
    locked = User.objects.select_for_update().get(pk=user.pk)
    old = locked.avatar.name
    if not old:
        return
    locked.avatar = ""
    locked.save(update_fields=["avatar"])
    user.avatar = ""
    transaction.on_commit(functools.partial(locked.avatar.storage.delete, old))


# --- Privacy policy and terms ------------------------------------------------------------------------------

@transaction.atomic
def policy_version_create(*, kind: str, title: str, text: str, changes: str = "", staff: User | None = None,
                          title_ru: str = "", text_ru: str = "", changes_ru: str = "") -> PolicyVersion:
    """A new draft with the next version number of its kind (numbers never repeat, drafts included)."""
    from django.db import connection

    if kind not in PolicyVersion.Kind.values:
        raise ValidationError({"kind": _("Unknown document.")})
    with connection.cursor() as cursor:  # serializes numbering per kind; released at commit
        cursor.execute("SELECT pg_advisory_xact_lock(8101, %s)", [PolicyVersion.Kind.values.index(kind)])
    last = PolicyVersion.objects.filter(kind=kind).order_by("-version").values_list("version", flat=True).first()
    policy = PolicyVersion(kind=kind, version=(last or 0) + 1, title=title.strip(), text=text.strip(),
                           changes=changes.strip(), title_ru=title_ru.strip(), text_ru=text_ru.strip(),
                           changes_ru=changes_ru.strip(), created_by=staff if staff is not None and staff.pk else None)
    policy.full_clean()
    policy.save()
    return policy


@transaction.atomic
def policy_publish(*, policy: PolicyVersion, staff: User) -> PolicyVersion:
    """From now on this version is current; every customer user sees the review banner until accepting it."""
    locked = PolicyVersion.objects.select_for_update().get(pk=policy.pk)
    if locked.published_at is not None:
        raise ValidationError(_("This version is already published."), code="published")
    newer = PolicyVersion.objects.filter(kind=locked.kind, version__gt=locked.version,
                                         published_at__isnull=False).exists()
    if newer:
        raise ValidationError(_("A newer version of this document is already published."), code="outdated")
    locked.published_at = timezone.now()
    locked.save(update_fields=["published_at"])
    topbar_changed_all()  # every user's review banner
    activity_record(action="policy_published", actor=staff, visible_to_customer=False,
                    details={"kind": locked.kind, "version": locked.version})
    return locked


@transaction.atomic
def policies_accept(*, user: User, policy_ids: list[int], ip: str | None = None) -> list[PolicyVersion]:
    """Record acceptance of the given current versions (the ones the user was shown); returns what was new."""
    from . import selectors

    current = {policy.pk: policy for policy in selectors.policies_current()}
    stale = [pk for pk in policy_ids if pk not in current]
    if stale or not policy_ids:
        # A newer version was published while the page was open: the user must read that one.
        raise ValidationError(_("The document was updated meanwhile. Please review the current version."),
                              code="stale")
    # The user row serialises two accepts of the same user (double submit): each version is recorded once.
    list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
    already = set(PolicyAcceptance.objects.filter(user=user, policy_id__in=policy_ids).values_list("policy_id", flat=True))
    accepted = [current[pk] for pk in sorted(set(policy_ids) - already)]
    PolicyAcceptance.objects.bulk_create([PolicyAcceptance(user=user, policy=policy, ip=ip or None) for policy in accepted])
    topbar_changed([user.customer_id])  # the review banner
    for policy in accepted:
        activity_record(action="policy_accepted", customer=user.customer, actor=user, ip=ip,
                        details={"kind": policy.kind, "version": policy.version})
    return accepted


# --- Export my data -------------------------------------------------------------------------------------

def _enqueue_export(export_id: int) -> None:
    """After commit; a broker outage is logged, the sweeper builds the export later."""
    from .tasks import data_export_build_task

    try:
        data_export_build_task.apply_async(kwargs={"export_id": export_id})
    except Exception:  # kombu/redis raise many connection errors; none may reach the user.
        logger.warning("Could not enqueue data export %s; the sweeper will build it.", export_id, exc_info=True)


@transaction.atomic
def data_export_request(*, customer: Customer, user: User, ip: str | None = None) -> DataExport:
    from django.db import IntegrityError

    try:
        with transaction.atomic():
            export = DataExport.objects.create(customer=customer, requested_by=user)
    except IntegrityError:
        raise ValidationError(_("An export is already being prepared. It will appear here in a few minutes."),
                              code="pending")
    activity_record(action="data_export_requested", customer=customer, actor=user, ip=ip)
    transaction.on_commit(functools.partial(_enqueue_export, export.pk))
    return export


FORMULA_LEADERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """Text someone typed, made inert for spreadsheets: a leading = + - @ tab or CR would start a
    formula (`=HYPERLINK(...)`) when the owner opens the export, so it gets a leading apostrophe."""
    return "'" + value if value.startswith(FORMULA_LEADERS) else value


def _csv_bytes(rows: list[dict]) -> bytes:
    from django.core.serializers.json import DjangoJSONEncoder

    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)
                         if isinstance(value, (list, dict)) else "" if value is None
                         else csv_cell(value) if isinstance(value, str) else value
                         for key, value in row.items()})
    return buffer.getvalue().encode("utf-8-sig")  # BOM: spreadsheets open UTF-8 correctly


def _own_sections(customer: Customer) -> dict[str, list[dict]]:
    from allauth.socialaccount.models import SocialAccount

    profile = {
        "client_id": customer.pk, "created_at": customer.created_at, "profile_type": customer.profile_type,
        "company_name": customer.company_name, "company_registration_number": customer.company_registration_number,
        "company_vat_number": customer.company_vat_number, "street": customer.street, "city": customer.city,
        "postcode": customer.postcode, "country": customer.country, "account_currency": customer.currency,
        "site_currency": customer.site_currency, "language": customer.language, "time_zone": customer.timezone,
        "newsletter": customer.newsletter, "email_billing": customer.email_billing,
        "email_support": customer.email_support, "email_abuse": customer.email_abuse,
        "ip_allowlist": customer.ip_allowlist,
    }
    users = list(customer.users.order_by("pk"))
    linked = {}
    for account in SocialAccount.objects.filter(user__in=users).order_by("pk"):
        linked.setdefault(account.user_id, []).append(account.provider)
    return {
        "profile": [profile],
        "users": [{
            "username": user.username, "first_name": user.first_name, "last_name": user.last_name,
            "email": user.email, "phone": user.phone, "role": user.role, "is_active": user.is_active,
            "date_joined": user.date_joined, "last_login": user.last_login, "linked_logins": linked.get(user.pk, []),
        } for user in users],
        "activity": [{
            "date": event.created_at, "action": event.action, "user": event.actor.username if event.actor else "",
            "ip": event.ip or "", "details": event.details,
        } for event in ActivityEvent.objects.filter(customer=customer, visible_to_customer=True)
            .select_related("actor").order_by("created_at", "pk")],
        "policy_acceptances": [{
            "document": acceptance.policy.kind, "version": acceptance.policy.version,
            "user": acceptance.user.username, "accepted_at": acceptance.accepted_at, "ip": acceptance.ip or "",
        } for acceptance in PolicyAcceptance.objects.filter(user__customer=customer)
            .select_related("policy", "user").order_by("accepted_at", "pk")],
    }


def data_export_archive(customer: Customer) -> bytes:
    """The ZIP: our own sections plus every registered app's, each as JSON and CSV."""
    from django.core.serializers.json import DjangoJSONEncoder

    sections: dict = _own_sections(customer)
    for name, exporter in personal_data.exporters().items():
        sections[name] = exporter(customer)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sections.items():
            if isinstance(data, bytes):
                archive.writestr(name, data)
                continue
            archive.writestr(f"{name}.json", json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2))
            archive.writestr(f"{name}.csv", _csv_bytes(data))
        archive.writestr("README.txt", (
            f"{settings.PORTAL_NAME}: personal data of client {customer.pk}, exported {timezone.now():%Y-%m-%d %H:%M} UTC.\n"
            "Each section is given as JSON and as CSV (UTF-8). Times are in UTC.\n"))
    return buffer.getvalue()


EXPORT_MAX_ATTEMPTS = 3


def data_export_build(*, export_id: int) -> DataExport | None:
    """Build one pending export; None if it is not pending (already built, or another worker has it)."""
    from django.core.files.base import ContentFile

    with transaction.atomic():
        export = (DataExport.objects.select_for_update(skip_locked=True).select_related("customer")
                  .filter(pk=export_id, status=DataExport.Status.PENDING).first())
        if export is None:
            return None
        export.attempts += 1
        try:
            with transaction.atomic():
                data = data_export_archive(export.customer)
        except Exception as error:
            logger.exception("data export %s failed", export.pk)
            export.error = repr(error)[:2000]
            if export.attempts >= EXPORT_MAX_ATTEMPTS:
                export.status = DataExport.Status.FAILED
            export.save(update_fields=["attempts", "error", "status"])
            return export
        export.file.save("export.zip", ContentFile(data), save=False)
        export.size = len(data)
        export.status = DataExport.Status.READY
        export.finished_at = timezone.now()
        export.expires_at = export.finished_at + timedelta(hours=settings.ACCOUNTS_EXPORT_LINK_HOURS)
        export.save()
        return export


def data_exports_sweep(*, now=None) -> dict:
    """Build exports nobody picked up (broker down, worker lost) and delete the files of expired ones."""
    now = now or timezone.now()
    waiting = list(DataExport.objects.filter(
        status=DataExport.Status.PENDING,
        created_at__lte=now - timedelta(seconds=settings.ACCOUNTS_EXPORT_PENDING_GRACE_SECONDS),
    ).order_by("pk").values_list("pk", flat=True))
    built = sum(1 for export_id in waiting if data_export_build(export_id=export_id) is not None)
    expired = 0
    for export in DataExport.objects.filter(status=DataExport.Status.READY, expires_at__lte=now).order_by("pk"):
        with transaction.atomic():
            locked = DataExport.objects.select_for_update(skip_locked=True).filter(
                pk=export.pk, status=DataExport.Status.READY).first()
            if locked is None:
                continue
            name = locked.file.name
            locked.status, locked.file = DataExport.Status.EXPIRED, ""
            locked.save(update_fields=["status", "file"])
            if name:
                transaction.on_commit(functools.partial(export.file.storage.delete, name))
            expired += 1
    return {"built": built, "expired": expired}


# --- Account deletion ---------------------------------------------------------------------------------------

@transaction.atomic
def deletion_request_create(*, customer: Customer, user: User, reason: str = "", ip: str | None = None
                            ) -> DeletionRequest:
    from django.db import IntegrityError

    _locked_customer(customer)
    try:
        with transaction.atomic():
            request = DeletionRequest.objects.create(customer=customer, requested_by=user, reason=reason.strip()[:2000])
    except IntegrityError:
        raise ValidationError(_("Your request is already awaiting review."), code="pending")
    _security_event(user=user, action="deletion_requested", ip=ip,
                    change=gettext_lazy("Account deletion requested"))
    return request


@transaction.atomic
def deletion_request_cancel(*, customer: Customer, user: User, ip: str | None = None) -> None:
    request = DeletionRequest.objects.select_for_update().filter(
        customer=customer, status=DeletionRequest.Status.PENDING).first()
    if request is None:
        raise ValidationError(_("There is no pending deletion request."), code="none")
    request.status = DeletionRequest.Status.CANCELLED
    request.save(update_fields=["status"])
    activity_record(action="deletion_cancelled", customer=customer, actor=user, ip=ip)


@transaction.atomic
def deletion_request_reject(*, deletion_request: DeletionRequest, staff: User, note: str) -> DeletionRequest:
    if not note.strip():
        raise ValidationError(_("Give the reason the customer will see."), code="no_reason")
    request = DeletionRequest.objects.select_for_update().get(pk=deletion_request.pk)
    if request.status != DeletionRequest.Status.PENDING:
        raise ValidationError(_("This request has already been reviewed."), code="reviewed")
    request.status, request.staff_note = DeletionRequest.Status.REJECTED, note.strip()
    request.reviewed_by, request.reviewed_at = staff, timezone.now()
    request.save(update_fields=["status", "staff_note", "reviewed_by", "reviewed_at"])
    activity_record(action="deletion_rejected", customer=request.customer, actor=staff, details={"note": request.staff_note})
    return request


@transaction.atomic
def deletion_request_approve(*, deletion_request: DeletionRequest, staff: User) -> DeletionRequest:
    request = DeletionRequest.objects.select_for_update().get(pk=deletion_request.pk)
    if request.status != DeletionRequest.Status.PENDING:
        raise ValidationError(_("This request has already been reviewed."), code="reviewed")
    # Checked under the customer lock customer_erase takes anyway. Money arriving later (a late bank
    # transfer) lands on the anonymized account's balance, which staff see and settle like any other.
    list(Customer.objects.select_for_update(no_key=True).filter(pk=request.customer_id).values_list("pk", flat=True))
    unsettled = [item for item in personal_data.deletion_open_items(request.customer) if item.blocks]
    if unsettled:
        raise ValidationError(
            _("Settle the account's money first (refund or write off the balance, settle open invoices): %(items)s")
            % {"items": "; ".join(f"{item.label}: {item.value}" for item in unsettled)}, code="unsettled")
    customer_erase(customer=request.customer, actor=staff)
    request.status, request.reviewed_by, request.reviewed_at = DeletionRequest.Status.COMPLETED, staff, timezone.now()
    request.reason = ""
    request.save(update_fields=["status", "reviewed_by", "reviewed_at", "reason"])
    return request


@transaction.atomic
def customer_erase(*, customer: Customer, actor: User | None) -> Customer:
    """Terminate the services, then anonymize every personal field of the account and its users.

    Financial records stay: the ledger is untouched and invoices keep the payer snapshot taken at
    issue, as accounting law requires. Registered apps run their handlers first (services end).
    """
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount
    from django_otp import devices_for_user

    locked = _locked_customer(customer)
    if locked.anonymized_at is not None:
        raise ValidationError(_("This account has already been anonymized."), code="anonymized")
    for handler in personal_data.erasure_handlers():
        handler(locked, actor)

    files = []
    users = list(User.objects.select_for_update().filter(customer=locked).order_by("pk"))
    for user in users:
        if user.avatar:
            files.append((user.avatar.storage, user.avatar.name))
        for device in devices_for_user(user, confirmed=None):
            device.delete()
        user.username = f"erased-{user.pk}"
        user.first_name = user.last_name = user.email = user.pending_email = user.phone = ""
        user.email_verified = user.phone_verified = False
        user.avatar = ""
        user.is_active = False
        user.set_unusable_password()
        user.save()
    SocialAccount.objects.filter(user__in=users).delete()
    EmailAddress.objects.filter(user__in=users).delete()
    PhoneVerification.objects.filter(user__in=users).delete()
    PolicyAcceptance.objects.filter(user__in=users).update(ip=None)
    for export in DataExport.objects.filter(customer=locked).exclude(file=""):
        files.append((export.file.storage, export.file.name))
    DataExport.objects.filter(customer=locked).delete()
    # The audit trail stays (what happened, when), without addresses and free-text details.
    ActivityEvent.objects.filter(customer=locked).update(ip=None, details={})

    for field in ("street", "city", "postcode", "company_name", "company_registration_number", "company_vat_number",
                  "verification_note", "email_billing", "email_support", "email_abuse", "code_word_hash",
                  "ip_allowlist"):
        setattr(locked, field, "")
    locked.newsletter = locked.login_alerts = locked.show_last_login = locked.pay_without_login = False
    locked.anonymized_at = timezone.now()
    locked.save()
    activity_record(action="account_anonymized", customer=locked, actor=actor, visible_to_customer=False)
    for storage, name in files:
        transaction.on_commit(functools.partial(storage.delete, name))
    return locked


# --- Social login (django-allauth) ---------------------------------------------------------------------------

def social_account_linked_record(*, user: User, provider: str, ip: str | None = None) -> None:
    with transaction.atomic():
        _security_event(user=user, action="social_linked", ip=ip, details={"provider": provider},
                        change=_later(gettext_lazy("Login with %(provider)s linked"), provider=provider))


@transaction.atomic
def social_account_unlink(*, user: User, account_id: int, ip: str | None = None) -> str:
    """Unlink one provider; refused while it is the only way to log in (no password, no other link)."""
    from allauth.socialaccount.models import SocialAccount

    locked = User.objects.select_for_update().get(pk=user.pk)  # two unlinks at once cannot both pass the check
    account = SocialAccount.objects.filter(user=locked, pk=account_id).first()
    if account is None:
        raise ValidationError(_("This login is not linked to your account."), code="not_found")
    others = SocialAccount.objects.filter(user=locked).exclude(pk=account.pk).exists()
    if not locked.has_usable_password() and not others:
        raise ValidationError(_("This is the only way to log in to your account. Set a password first "
                                "(use “Forgot your password?” on the login page)."), code="last_method")
    from .selectors import social_provider_name

    provider = social_provider_name(account.provider)
    account.delete()
    _security_event(user=locked, action="social_unlinked", ip=ip, details={"provider": provider},
                    change=_later(gettext_lazy("Login with %(provider)s unlinked"), provider=provider))
    return provider
