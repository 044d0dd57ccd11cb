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
