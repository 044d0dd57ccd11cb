"""The customer profile (address, profile type, preferences with the time zone, email routing) and a
login's avatar and theme."""
import functools
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from .. import selectors
from ..models import Customer, User
from .activity import activity_record
from .locks import customer_lock


@transaction.atomic
def customer_update_address(*, customer: Customer, actor: User, street: str, city: str, postcode: str,
                            country: str = "", ip: str | None = None) -> Customer:
    """The country is set once; afterwards only staff change it (the customer opens a ticket)."""
    locked = customer_lock(customer)
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
    locked = customer_lock(customer)
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
    if time_zone is not None and time_zone not in selectors.available_time_zones():
        raise ValidationError({"time_zone": _("Unknown time zone.")})
    if low_balance_threshold < 0:
        raise ValidationError({"low_balance_threshold": _("The threshold cannot be negative.")})
    locked = customer_lock(customer)
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
    locked = customer_lock(customer)
    locked.email_billing, locked.email_support, locked.email_abuse = (
        email_billing.strip(), email_support.strip(), email_abuse.strip())
    locked.full_clean()
    locked.save(update_fields=["email_billing", "email_support", "email_abuse"])
    activity_record(action="email_routing_changed", customer=locked, actor=actor)
    return locked


# --- Theme ------------------------------------------------------------------------------------------

@transaction.atomic
def user_set_theme(*, user: User, theme: str) -> None:
    if theme not in User.Theme.values:
        raise ValidationError(_("Unknown theme."), code="invalid")
    User.objects.filter(pk=user.pk).update(theme=theme)
    user.theme = theme


# --- Avatar ---------------------------------------------------------------------------------------------

@transaction.atomic
def user_set_avatar(*, user: User, upload) -> None:
    """Replace the avatar with our own re-encoded copy of `upload` (checked by content, EXIF dropped)."""
    from django.core.files.base import ContentFile

    from ..avatars import avatar_reencode

    data, extension = avatar_reencode(upload)
    locked = User.objects.select_for_update().get(pk=user.pk)
    old = locked.avatar.name
    locked.avatar.save(f"avatar.{extension}", ContentFile(data), save=False)
    locked.save(update_fields=["avatar"])
    user.avatar = locked.avatar
    if old:
        transaction.on_commit(functools.partial(locked.avatar.storage.delete, old))


@transaction.atomic
def user_remove_avatar(*, user: User) -> None:
    locked = User.objects.select_for_update().get(pk=user.pk)
    old = locked.avatar.name
    if not old:
        return
    locked.avatar = ""
    locked.save(update_fields=["avatar"])
    user.avatar = ""
    transaction.on_commit(functools.partial(locked.avatar.storage.delete, old))
