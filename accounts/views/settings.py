"""Settings: the section shell other apps plug into, and the Profile, Preferences, Email routing,
Password and Activity sections. Each card posts to its own URL (`settings_form_post`)."""
import zoneinfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.forms import PasswordChangeForm
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from core.form_renderer import plain_widgets

from .. import selectors
from ..activity_labels import activity_label
from ..client_ip import client_ip
from ..forms import (
    AddressForm, AvatarForm, ContactForm, EmailRoutingForm, PhoneCodeForm, PhoneForm, PreferencesForm, ProfileTypeForm,
)
from ..models import Customer
from ..phone import format_phone, verification_backend
from ..roles import Area, acting_customer, customer_view, role_allows
from ..services.contact import user_update_contact
from ..services.phone import phone_verification_confirm, phone_verification_start
from ..services.profile import (
    customer_update_address, customer_update_email_routing, customer_update_preferences, customer_update_profile_type,
)
from ..services.security import password_change_record
from ._posts import settings_form_post

# Each section is its own page; each card on it posts to its own URL and redirects back on success.
SECTIONS = [
    ("profile", gettext_lazy("Profile"), Area.ACCOUNT, "accounts:settings_profile"),
    ("preferences", gettext_lazy("Preferences"), Area.SETTINGS, "accounts:settings_preferences"),
    ("email", gettext_lazy("Email routing"), Area.SETTINGS, "accounts:settings_email"),
    ("security", gettext_lazy("Security"), Area.ACCOUNT, "accounts:settings_security"),
    ("password", gettext_lazy("Password"), Area.ACCOUNT, "accounts:password_change"),
    ("activity", gettext_lazy("Activity"), Area.ACCOUNT, "accounts:activity"),
    ("privacy", gettext_lazy("Privacy and personal data"), Area.ACCOUNT, "accounts:settings_privacy"),
    ("users", gettext_lazy("Trusted users"), Area.SETTINGS, "accounts:trusted_users"),
]


def register_settings_section(key: str, title, area: str, url_name: str) -> None:
    """Apps above accounts (e.g. api) add their own Settings section, rendered with `settings_render`."""
    if all(existing[0] != key for existing in SECTIONS):
        SECTIONS.append((key, title, area, url_name))


_section_urls: dict[tuple, str] = {}


def _section_url(name: str) -> str:
    """`reverse(name)` of a section's URL (no arguments), once per script prefix rather than per request."""
    key = (get_script_prefix(), get_urlconf(), name)
    url = _section_urls.get(key)
    if url is None:
        url = _section_urls[key] = reverse(name)
    return url


def settings_render(request: HttpRequest, section: str, template: str, context: dict) -> HttpResponse:
    """A Settings section page: the section menu (what the role may open), the payment blockers banner."""
    customer = acting_customer(request)
    can_manage = role_allows(request.user, Area.SETTINGS)
    context = {
        "customer": customer,
        "section": section,
        "sections": [{"key": key, "title": title, "url": _section_url(url)} for key, title, area, url in SECTIONS
                     if role_allows(request.user, area)],
        "can_manage": can_manage,
        "blockers": selectors.payment_blockers(customer) if can_manage else [],
        **context,
    }
    return render(request, template, context)


@customer_view(Area.ACCOUNT)
def account_settings(request: HttpRequest) -> HttpResponse:
    return redirect("accounts:settings_profile")


# --- Profile ----------------------------------------------------------------------------------------

def profile_page(request: HttpRequest, **forms) -> HttpResponse:
    """The Profile section; a card whose POST failed passes its bound form (e.g. `contact_form=form`)."""
    user, customer = request.user, acting_customer(request)
    pending = selectors.phone_verification_pending(user=user) if user.phone and not user.phone_verified else None
    context = {
        "contact_form": forms.get("contact_form") or ContactForm(initial={
            "first_name": user.first_name, "last_name": user.last_name, "email": user.email}),
        "phone_form": forms.get("phone_form") or PhoneForm(initial={"phone": format_phone(user.phone)},
                                                            methods=verification_backend().methods),
        "phone_code_form": forms.get("phone_code_form") or PhoneCodeForm(),
        "phone_pending": pending,
        "phone_display": format_phone(user.phone),
        "avatar_form": forms.get("avatar_form") or AvatarForm(),
    }
    if role_allows(user, Area.SETTINGS):
        context["address_form"] = forms.get("address_form") or AddressForm(
            initial={"street": customer.street, "city": customer.city, "postcode": customer.postcode,
                     "country": customer.country}, country_locked=bool(customer.country))
        context["profile_type_form"] = forms.get("profile_type_form") or ProfileTypeForm(initial={
            "profile_type": customer.profile_type, "company_name": customer.company_name,
            "company_registration_number": customer.company_registration_number,
            "company_vat_number": customer.company_vat_number})
    return settings_render(request, "profile", "accounts/settings/profile.html", context)


@customer_view(Area.ACCOUNT)
def settings_profile(request: HttpRequest) -> HttpResponse:
    return profile_page(request)


@customer_view(Area.ACCOUNT)
@require_POST
def settings_contact(request: HttpRequest) -> HttpResponse:
    form = ContactForm(request.POST)

    def saved(requested: bool) -> None:
        messages.success(request, _("Contact information saved."))
        if requested:
            messages.info(request, _("We sent a confirmation link to %(email)s. Your current address stays in use "
                                     "until you open it.") % {"email": form.cleaned_data["email"]})

    return settings_form_post(
        request, form, save=lambda: user_update_contact(user=request.user, ip=client_ip(request), **form.cleaned_data),
        success=saved, back="accounts:settings_profile", anchor="contact",
        page=lambda form: profile_page(request, contact_form=form))


@customer_view(Area.ACCOUNT)
@require_POST
def settings_phone(request: HttpRequest) -> HttpResponse:
    form = PhoneForm(request.POST, region=acting_customer(request).country, methods=verification_backend().methods)

    def sent(verification) -> str:
        number = format_phone(verification.phone)
        if verification.method == "call":
            return _("We are calling %(phone)s. You do not need to answer: enter the last "
                     "4 digits of the calling number.") % {"phone": number}
        return _("We sent a code to %(phone)s.") % {"phone": number}

    return settings_form_post(
        request, form,
        save=lambda: phone_verification_start(user=request.user, phone=form.cleaned_data["phone"],
                                              ip=client_ip(request), method=form.cleaned_data["method"]),
        success=sent, back="accounts:settings_profile", anchor="phone",
        page=lambda form: profile_page(request, phone_form=form))


@customer_view(Area.ACCOUNT)
@require_POST
def settings_phone_verify(request: HttpRequest) -> HttpResponse:
    form = PhoneCodeForm(request.POST)
    return settings_form_post(
        request, form,
        save=lambda: phone_verification_confirm(user=request.user, code=form.cleaned_data["code"],
                                                ip=client_ip(request)),
        success=_("Your mobile number is verified."), back="accounts:settings_profile", anchor="phone",
        page=lambda form: profile_page(request, phone_code_form=form))


@customer_view(Area.SETTINGS)
@require_POST
def settings_address(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    form = AddressForm(request.POST, country_locked=bool(customer.country), initial={"country": customer.country})
    return settings_form_post(
        request, form,
        save=lambda: customer_update_address(customer=customer, actor=request.user, ip=client_ip(request),
                                             **form.cleaned_data),
        success=_("Postal address saved."), back="accounts:settings_profile", anchor="address",
        page=lambda form: profile_page(request, address_form=form))


@customer_view(Area.SETTINGS)
@require_POST
def settings_profile_type(request: HttpRequest) -> HttpResponse:
    form = ProfileTypeForm(request.POST)

    def saved(customer: Customer) -> str | None:
        if customer.verification_status == Customer.Verification.PENDING:
            messages.info(request, _("Company details saved. Our staff will verify them; payments wait until then."))
            return None
        return _("Profile type saved.")

    return settings_form_post(
        request, form,
        save=lambda: customer_update_profile_type(customer=acting_customer(request), actor=request.user,
                                                  ip=client_ip(request), **form.cleaned_data),
        success=saved, back="accounts:settings_profile", anchor="profile-type",
        page=lambda form: profile_page(request, profile_type_form=form))


# --- Preferences, email routing ---------------------------------------------------------------------

@customer_view(Area.SETTINGS)
def settings_preferences(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    initial = {"newsletter": customer.newsletter, "low_balance_threshold": customer.low_balance_threshold,
               "auto_renew_default": "on" if customer.auto_renew_default else "off",
               "site_currency": customer.site_currency, "pay_without_login": customer.pay_without_login,
               "language": customer.language, "time_zone": customer.timezone}
    form = PreferencesForm(request.POST or None, initial=initial, account_currency=customer.currency)

    def page(form: PreferencesForm) -> HttpResponse:
        return settings_render(request, "preferences", "accounts/settings/preferences.html", {"form": form})

    if request.method != "POST":
        return page(form)

    chosen = {}

    def saved(_result) -> str:
        # The confirmation already speaks the language (and time zone) just chosen.
        chosen["language"] = form.cleaned_data["language"]
        translation.activate(chosen["language"])
        if form.cleaned_data["time_zone"]:
            timezone.activate(zoneinfo.ZoneInfo(form.cleaned_data["time_zone"]))
        return _("Preferences saved.")

    response = settings_form_post(
        request, form,
        save=lambda: customer_update_preferences(customer=customer, actor=request.user, **form.cleaned_data),
        success=saved, back="accounts:settings_preferences", page=page)
    if chosen:
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, chosen["language"], max_age=365 * 24 * 3600, samesite="Lax")
    return response


@customer_view(Area.SETTINGS)
def settings_email_routing(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    initial = {"email_billing": customer.email_billing, "email_support": customer.email_support,
               "email_abuse": customer.email_abuse}
    form = EmailRoutingForm(request.POST or None, initial=initial)

    def page(form: EmailRoutingForm) -> HttpResponse:
        owner = selectors.customer_owner(customer=customer)
        account_email = owner.email if owner else ""
        return settings_render(request, "email", "accounts/settings/email_routing.html", {
            "form": form, "account_email": account_email})

    if request.method != "POST":
        return page(form)
    return settings_form_post(
        request, form,
        save=lambda: customer_update_email_routing(customer=customer, actor=request.user, **form.cleaned_data),
        success=_("Email addresses saved."), back="accounts:settings_email", page=page)


# --- Password, activity -----------------------------------------------------------------------------

@customer_view(Area.ACCOUNT)
def password_change(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request.POST or None, renderer=plain_widgets)
    if request.method == "POST" and form.is_valid():
        form.save()
        # Keeps this session; every other session of the user fails the session-hash check and ends.
        update_session_auth_hash(request, form.user)
        password_change_record(user=form.user, ip=client_ip(request))
        messages.success(request, _("Your password has been changed. Your other sessions were logged out."))
        return redirect("accounts:password_change")
    return settings_render(request, "password", "accounts/settings/password.html", {"form": form})


ACTIVITY_PAGE_SIZE = 25


@customer_view(Area.ACCOUNT)
def activity(request: HttpRequest) -> HttpResponse:
    count, events = selectors.activity_page_rows(customer=acting_customer(request), user=request.user)
    paginator = Paginator(events, ACTIVITY_PAGE_SIZE)
    paginator.count = count  # counted by the selector's compiled query
    page = paginator.get_page(request.GET.get("page"))
    rows = [{"event": event, "label": activity_label(event)} for event in page]
    return settings_render(request, "activity", "accounts/settings/activity.html", {
        "page": page, "rows": rows})
