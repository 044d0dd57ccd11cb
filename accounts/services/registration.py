"""Sign-up, email verification (and the signed-link mail it shares with invitations), account language."""
import hashlib

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..models import Customer, User
from ..tokens import make_email_token, read_email_token
from .activity import activity_record, security_change_notify, translated_later


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
    from ..signals import email_requested

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
        security_change_notify(
            user=user, change=translated_later(gettext_lazy("Email address changed to %(email)s"), email=user.email),
            extra_email=changed_from)
    return user


@transaction.atomic
def customer_set_language(*, customer: Customer, language: str) -> None:
    if language not in dict(settings.LANGUAGES):
        raise ValidationError(_("Unsupported language."))
    Customer.objects.filter(pk=customer.pk).update(language=language)
    customer.language = language
