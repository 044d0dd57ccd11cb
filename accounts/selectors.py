from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from .models import Customer, User


def customer_owner(*, customer: Customer) -> User | None:
    return customer.users.filter(role=User.Role.OWNER).order_by("pk").first()


def payment_blockers(customer: Customer) -> list[dict]:
    """What stops this customer paying: each item has a message and a link to fix it.

    Billing refuses payment while the list is non-empty; the settings page shows it as a banner.
    """
    owner = customer_owner(customer=customer)
    settings_url = reverse("accounts:settings")
    blockers: list[dict] = []
    missing = []
    if owner is None or not owner.last_name.strip():
        missing.append(_("last name"))
    if owner is None or not owner.first_name.strip():
        missing.append(_("first name"))
    if owner is None or not owner.email.strip():
        missing.append(_("email"))
    if not customer.city.strip():
        missing.append(_("city"))
    if not customer.street.strip():
        missing.append(_("address"))
    for field in missing:
        blockers.append({"code": "missing_field", "field": str(field), "message": _("Fill in your %(field)s.") % {"field": field}, "url": settings_url})
    if customer.profile_type == Customer.ProfileType.COMPANY and customer.verification_status != Customer.Verification.VERIFIED:
        if customer.verification_status == Customer.Verification.REJECTED:
            message = _("Company verification was rejected: %(note)s") % {"note": customer.verification_note or "-"}
        else:
            message = _("Your company details are awaiting verification by our staff.")
        blockers.append({"code": "company_unverified", "field": "", "message": message, "url": settings_url})
    return blockers


def activity_for(*, customer: Customer, user: User):
    """The customer's activity log, newest first. Owners see everything; trusted users their own actions."""
    from .models import ActivityEvent

    events = ActivityEvent.objects.filter(customer=customer, visible_to_customer=True).select_related("actor")
    if user.role != User.Role.OWNER:
        events = events.filter(actor=user)
    return events.order_by("-created_at", "-pk")


def previous_login(*, user: User):
    """The login before the current one (IP and time), or None."""
    from .models import ActivityEvent

    return ActivityEvent.objects.filter(actor=user, action="login").order_by("-created_at", "-pk")[1:2].first()


def customer_users(*, customer: Customer):
    return customer.users.order_by("-is_active", "pk")


def customer_user_get(*, customer: Customer, user_id: int) -> User:
    from django.shortcuts import get_object_or_404

    return get_object_or_404(customer.users, pk=user_id)
