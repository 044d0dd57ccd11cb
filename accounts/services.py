from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from .models import Customer, User
from .tokens import make_email_token, read_email_token


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
    if user.email.lower() != email:
        if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
            raise ValidationError(_("This email address is already used by another account."), code="taken")
        user.email = email
    user.email_verified = True
    user.save(update_fields=["email", "email_verified"])
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
