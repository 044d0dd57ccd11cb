"""WebAuthn ceremonies (py_webauthn). Challenges live in the session for PASSKEYS_CHALLENGE_TTL seconds and
are used once. User verification is required, so a passkey is itself two factors (device + PIN or
biometrics) and logs in without a password or a TOTP code."""
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from accounts.models import User
from accounts.services.activity import activity_record

from .models import Passkey

REGISTER_KEY, LOGIN_KEY = "passkey_register", "passkey_login"


def _store_challenge(session, key: str, challenge: bytes) -> None:
    session[key] = {"challenge": challenge.hex(), "at": time.time()}


def _take_challenge(session, key: str) -> bytes:
    stored = session.pop(key, None)
    if not stored or time.time() - stored["at"] > settings.PASSKEYS_CHALLENGE_TTL:
        raise ValidationError(_("The passkey request expired. Please try again."), code="expired")
    return bytes.fromhex(stored["challenge"])


def registration_options(*, user: User, session) -> str:
    options = generate_registration_options(
        rp_id=settings.PASSKEYS_RP_ID, rp_name=settings.PORTAL_NAME, user_name=user.username,
        user_id=str(user.pk).encode(), user_display_name=user.get_full_name() or user.username,
        authenticator_selection=AuthenticatorSelectionCriteria(resident_key=ResidentKeyRequirement.REQUIRED,
                                                               user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=bytes(p.credential_id)) for p in user.passkeys.all()],
    )
    _store_challenge(session, REGISTER_KEY, options.challenge)
    return options_to_json(options)


@transaction.atomic
def passkey_register(*, user: User, session, credential: str, name: str, ip: str | None = None) -> Passkey:
    challenge = _take_challenge(session, REGISTER_KEY)
    try:
        verified = verify_registration_response(credential=credential, expected_challenge=challenge,
                                                expected_rp_id=settings.PASSKEYS_RP_ID,
                                                expected_origin=settings.PASSKEYS_ORIGINS, require_user_verification=True)
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError):
        raise ValidationError(_("The passkey could not be verified."), code="invalid") from None
    if Passkey.objects.filter(credential_id=verified.credential_id).exists():
        raise ValidationError(_("This passkey is already registered."), code="duplicate")
    passkey = Passkey.objects.create(user=user, name=(name.strip() or _("Passkey"))[:100], credential_id=verified.credential_id,
                                     public_key=verified.credential_public_key, sign_count=verified.sign_count)
    if user.customer_id:
        activity_record(action="passkey_added", customer=user.customer, actor=user, ip=ip, details={"name": passkey.name})
    return passkey


def authentication_options(*, session) -> str:
    options = generate_authentication_options(rp_id=settings.PASSKEYS_RP_ID,
                                              user_verification=UserVerificationRequirement.REQUIRED)
    _store_challenge(session, LOGIN_KEY, options.challenge)
    return options_to_json(options)


@transaction.atomic
def passkey_authenticate(*, session, credential: dict) -> User:
    """The user the passkey belongs to, or ValidationError (one message for every failure)."""
    failed = ValidationError(_("This passkey cannot log you in."), code="invalid")
    challenge = _take_challenge(session, LOGIN_KEY)
    try:
        credential_id = base64url_to_bytes(credential["rawId"])
    except (KeyError, TypeError, ValueError):
        raise failed from None
    passkey = Passkey.objects.select_for_update(of=("self",)).select_related("user", "user__customer").filter(credential_id=credential_id).first()
    if passkey is None or not passkey.user.is_active or passkey.user.customer_id is None:
        raise failed
    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=settings.PASSKEYS_RP_ID,
            expected_origin=settings.PASSKEYS_ORIGINS, credential_public_key=bytes(passkey.public_key),
            credential_current_sign_count=passkey.sign_count, require_user_verification=True)
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError):
        raise failed from None
    Passkey.objects.filter(pk=passkey.pk).update(sign_count=verified.new_sign_count, last_used_at=timezone.now())
    return passkey.user


@transaction.atomic
def passkey_delete(*, passkey: Passkey, actor: User, ip: str | None = None) -> None:
    if actor.customer_id:
        activity_record(action="passkey_removed", customer=actor.customer, actor=actor, ip=ip, details={"name": passkey.name})
    passkey.delete()
