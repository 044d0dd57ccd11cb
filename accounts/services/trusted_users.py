"""Trusted users: more logins for one customer, invited by email, with roles; one active owner always stays."""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import selectors
from ..models import Customer, User
from ..tokens import make_invitation_token
from .activity import activity_record, security_change_notify, translated_later
from .locks import customer_lock
from .registration import email_link_send


def _active_owner_count(customer: Customer) -> int:
    return customer.users.filter(role=User.Role.OWNER, is_active=True).count()


@transaction.atomic
def trusted_user_invite(*, customer: Customer, actor: User, username: str, email: str, first_name: str,
                        last_name: str, role: str, ip: str | None = None) -> User:
    """A new login for the same customer; the person sets their own password through the emailed link."""
    customer_lock(customer)
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


@transaction.atomic
def invitation_accept(*, token: str, password: str) -> User:
    user = selectors.invitation_user(token=token)
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
    customer_lock(customer)
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
    security_change_notify(user=actor, change=translated_later(
        gettext_lazy("Role of %(user)s changed to %(role)s"), user=user.username, role=User.Role(role).label), ip=ip)
    return user


@transaction.atomic
def trusted_user_revoke(*, customer: Customer, actor: User, user_id: int, ip: str | None = None) -> User:
    """Deactivate the login: its sessions stop working at once (the auth backend refuses inactive users)."""
    customer_lock(customer)
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
    security_change_notify(user=actor, change=translated_later(
        gettext_lazy("Access of %(user)s revoked"), user=user.username), ip=ip)
    return user
