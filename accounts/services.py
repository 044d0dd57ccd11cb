import logging
import secrets
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .ip_allowlist import AllowlistError, ip_permitted, parse_allowlist
from .models import ActivityEvent, Customer, PhoneVerification, User
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
    transaction.on_commit(
        lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address], html_message=html)
    )


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
    """notifications.services.notify (PROTOCOL contract), imported late: notifications sits above accounts."""
    from notifications.services import notify

    notify(customer=customer, kind=kind, context=context, link=link)


def _later(message, **params):
    """A change description rendered later, in the language of the customer who receives it."""
    return lambda: str(message) % {key: str(value) for key, value in params.items()}


def _when() -> str:
    return timezone.now().strftime("%Y-%m-%d %H:%M UTC")


def security_change_notify(*, user: User, change, ip: str | None = None, extra_email: str = "") -> None:
    """Tell the account about a security-relevant change (mandatory kind `security_change`).

    `change` is a lazy string or a `_later(...)` callable, translated in the customer's language.
    """
    with translation.override(user.customer.language):
        text = change() if callable(change) else str(change)
    context = {"change": text, "username": user.username, "ip": ip or "", "when": _when()}
    if extra_email:
        context["previous_email"] = extra_email
    _notify(customer=user.customer, kind="security_change", context=context, link=reverse("accounts:activity"))


def _security_event(*, user: User, action: str, change: str, ip: str | None, details: dict | None = None,
                    actor: User | None = None) -> None:
    activity_record(action=action, customer=user.customer, actor=actor or user, ip=ip, details=details)
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
                "username": user.username, "ip": ip or "", "when": _when(), "user_agent": user_agent[:200],
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
def phone_verification_start(*, user: User, phone: str, ip: str | None = None) -> PhoneVerification:
    """Save `phone` (E.164, already validated) as unverified and deliver a code to it."""
    user = User.objects.select_for_update().get(pk=user.pk)
    hour_ago = timezone.now() - timedelta(hours=1)
    if user.phone_verifications.filter(created_at__gte=hour_ago).count() >= settings.PHONE_CODES_PER_HOUR:
        raise ValidationError(_("Too many codes requested. Please try again in an hour."), code="rate_limited")
    if user.phone != phone or not user.phone_verified:
        user.phone, user.phone_verified = phone, False
        user.save(update_fields=["phone", "phone_verified"])
    backend = verification_backend()
    try:
        code = backend.deliver(phone)
    except Exception:
        logger.exception("phone verification delivery failed for user %s", user.pk)
        raise ValidationError(_("We could not reach the number right now. Please try again later."), code="delivery")
    user.phone_verifications.filter(verified_at__isnull=True).update(expires_at=timezone.now())
    return PhoneVerification.objects.create(
        user=user, phone=phone, method=backend.method, code_hash=make_password(code),
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
    return Customer.objects.select_for_update().get(pk=customer.pk)


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
                                language: str) -> Customer:
    if site_currency not in settings.CURRENCIES:
        raise ValidationError({"site_currency": _("Unsupported currency.")})
    if low_balance_threshold < 0:
        raise ValidationError({"low_balance_threshold": _("The threshold cannot be negative.")})
    locked = _locked_customer(customer)
    locked.newsletter, locked.low_balance_threshold = newsletter, low_balance_threshold
    locked.auto_renew_default, locked.site_currency = auto_renew_default, site_currency
    locked.pay_without_login, locked.language = pay_without_login, language
    locked.full_clean()
    locked.save(update_fields=["newsletter", "low_balance_threshold", "auto_renew_default", "site_currency",
                               "pay_without_login", "language"])
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
    StaticToken.objects.bulk_create([StaticToken(device=static, token=code) for code in codes])
    _security_event(user=user, action="2fa_enabled", ip=ip, change=gettext_lazy("Two-factor authentication turned on"))
    return codes


def otp_match(*, user: User, token: str):
    """The confirmed device that accepts `token` (a TOTP code or a recovery code, used up), else None."""
    from django_otp import match_token

    token = (token or "").strip().replace(" ", "").lower()
    return match_token(user, token) if token else None


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
    address = user.email
    transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address], html_message=html))


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
