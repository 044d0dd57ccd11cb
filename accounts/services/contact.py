"""Contact information of a login; a new email address only takes effect from its confirmation link."""
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from ..models import User
from .activity import activity_record
from .registration import email_verification_send


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
