import io
import time
import zoneinfo
from base64 import b32encode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import update_session_auth_hash, user_login_failed
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST, require_http_methods

from core.ratelimit import limit_posts

from . import selectors
from .activity_labels import activity_label
from .client_ip import client_ip
from .forms import (
    AddressForm, AvatarForm, CodeWordForm, ContactForm, EmailRoutingForm, IPAllowlistForm, LoginForm, LoginOptionsForm,
    OTPLoginForm, OTPTokenForm, OutboxPasswordResetForm, PhoneCodeForm, PhoneForm, PreferencesForm, ProfileTypeForm,
    ReauthForm, RegistrationForm, RoleForm, TOTPDisableForm, TrustedUserForm,
)
from .session_policy import recent_auth_required, recently_authenticated
from .models import Customer, User
from .phone import format_phone, verification_backend
from .roles import Area, acting_customer, acting_customer_or_none, customer_view, role_allows
from .services.activity import login_failure_record
from .services.contact import user_update_contact
from .services.phone import phone_verification_confirm, phone_verification_pending, phone_verification_start
from .services.policies import policies_accept
from .services.profile import (
    customer_update_address, customer_update_email_routing, customer_update_preferences, customer_update_profile_type,
    user_avatar_remove, user_avatar_set, user_set_theme,
)
from .services.registration import customer_register, customer_set_language, email_verification_send, email_verify
from .services.security import code_word_set, customer_update_login_options, ip_allowlist_set, password_changed_record
from .services.social import social_account_unlink
from .services.totp import otp_enabled, otp_match, totp_disable, totp_setup_confirm, totp_setup_start
from .services import trusted_users as trusted_user_services


@limit_posts("register", ip=client_ip, account=lambda request: request.POST.get("email", ""))
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = RegistrationForm(request.POST or None, policies=selectors.policies_current())
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        owner = customer_register(
            username=data["username"], email=data["email"], password=data["password1"],
            first_name=data["first_name"], last_name=data["last_name"],
            language=request.LANGUAGE_CODE if request.LANGUAGE_CODE in ("en", "ru") else "en",
        )
        if data.get("policy_ids"):
            # The versions shown on the form: the new user is not asked to "review a new version" of them.
            try:
                policies_accept(user=owner, policy_ids=data["policy_ids"], ip=client_ip(request))
            except ValidationError:
                pass  # published a moment ago: the review banner asks for that version after login
        return render(request, "accounts/register_done.html", {"email": data["email"]})
    return render(request, "accounts/register.html", {"form": form})


def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirm button (no state change on GET); POST verifies."""
    if request.method == "POST":
        try:
            email_verify(token=token)
        except ValidationError as error:
            return render(request, "accounts/verify_email.html", {"error": error.messages[0]}, status=400)
        messages.success(request, _("Your email address is verified."))
        return redirect("dashboard" if request.user.is_authenticated else "accounts:login")
    return render(request, "accounts/verify_email.html", {"token": token})


@require_POST
@customer_view(Area.ACCOUNT)
@limit_posts("verification_resend", ip=client_ip, account=lambda request: str(request.user.pk))
def resend_verification(request: HttpRequest) -> HttpResponse:
    if request.user.email_verified:
        messages.info(request, _("Your email address is already verified."))
    else:
        email_verification_send(user=request.user)
        messages.success(request, _("We sent a new verification link to %(email)s.") % {"email": request.user.email})
    return _safe_next(request)


def _safe_next(request: HttpRequest) -> HttpResponseRedirect:
    """A redirect to the POSTed `next` if it is a path on this site, else to the home page. Never
    `redirect()`: it would try `next` as a URL name ("NaN" → NoReverseMatch, a 500)."""
    next_url = request.POST.get("next") or "/"
    if not next_url.startswith("/") or not url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = "/"
    return HttpResponseRedirect(next_url)


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    language = request.POST.get("language", "")
    response = _safe_next(request)
    try:
        customer = acting_customer_or_none(request)
        if customer is not None:
            if not role_allows(request.user, Area.SETTINGS):  # the language is the whole account's
                messages.error(request, _("Only the account owner can change the account language."))
                return response
            customer_set_language(customer=customer, language=language)
    except ValidationError:
        messages.error(request, _("Unsupported language."))
        return response
    if language in ("en", "ru"):
        from django.conf import settings

        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, max_age=365 * 24 * 3600, samesite="Lax")
    return response


# --- Settings pages ----------------------------------------------------------------------------------
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


def _settings_render(request: HttpRequest, section: str, template: str, context: dict) -> HttpResponse:
    customer = acting_customer(request)
    can_manage = role_allows(request.user, Area.SETTINGS)
    context = {
        "customer": customer,
        "section": section,
        "sections": [{"key": key, "title": title, "url": reverse(url)} for key, title, area, url in SECTIONS
                     if role_allows(request.user, area)],
        "can_manage": can_manage,
        "blockers": selectors.payment_blockers(customer) if can_manage else [],
        **context,
    }
    return render(request, template, context)


settings_render = _settings_render  # public name for the sections other apps register


def _back(url_name: str, anchor: str = "") -> HttpResponse:
    return redirect(reverse(url_name) + (f"#{anchor}" if anchor else ""))


def _apply_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


@customer_view(Area.ACCOUNT)
def account_settings(request: HttpRequest) -> HttpResponse:
    return redirect("accounts:settings_profile")


def _profile_page(request: HttpRequest, **forms) -> HttpResponse:
    user, customer = request.user, acting_customer(request)
    pending = phone_verification_pending(user=user) if user.phone and not user.phone_verified else None
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
    return _settings_render(request, "profile", "accounts/settings/profile.html", context)


@customer_view(Area.ACCOUNT)
def settings_profile(request: HttpRequest) -> HttpResponse:
    return _profile_page(request)


@customer_view(Area.ACCOUNT)
@require_POST
def settings_contact(request: HttpRequest) -> HttpResponse:
    form = ContactForm(request.POST)
    if form.is_valid():
        try:
            requested = user_update_contact(user=request.user, ip=client_ip(request), **form.cleaned_data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, _("Contact information saved."))
            if requested:
                messages.info(request, _("We sent a confirmation link to %(email)s. Your current address stays in use "
                                         "until you open it.") % {"email": form.cleaned_data["email"]})
            return _back("accounts:settings_profile", "contact")
    return _profile_page(request, contact_form=form)


@customer_view(Area.ACCOUNT)
@require_POST
def settings_phone(request: HttpRequest) -> HttpResponse:
    form = PhoneForm(request.POST, region=acting_customer(request).country, methods=verification_backend().methods)
    if form.is_valid():
        try:
            verification = phone_verification_start(user=request.user, phone=form.cleaned_data["phone"],
                                                    ip=client_ip(request), method=form.cleaned_data["method"])
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            phone = format_phone(verification.phone)
            if verification.method == "call":
                messages.success(request, _("We are calling %(phone)s. You do not need to answer: enter the last "
                                            "4 digits of the calling number.") % {"phone": phone})
            else:
                messages.success(request, _("We sent a code to %(phone)s.") % {"phone": phone})
            return _back("accounts:settings_profile", "phone")
    return _profile_page(request, phone_form=form)


@customer_view(Area.ACCOUNT)
@require_POST
def settings_phone_verify(request: HttpRequest) -> HttpResponse:
    form = PhoneCodeForm(request.POST)
    if form.is_valid():
        try:
            phone_verification_confirm(user=request.user, code=form.cleaned_data["code"], ip=client_ip(request))
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, _("Your mobile number is verified."))
            return _back("accounts:settings_profile", "phone")
    return _profile_page(request, phone_code_form=form)


@customer_view(Area.SETTINGS)
@require_POST
def settings_address(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    form = AddressForm(request.POST, country_locked=bool(customer.country), initial={"country": customer.country})
    if form.is_valid():
        try:
            customer_update_address(customer=customer, actor=request.user, ip=client_ip(request),
                                    **form.cleaned_data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, _("Postal address saved."))
            return _back("accounts:settings_profile", "address")
    return _profile_page(request, address_form=form)


@customer_view(Area.SETTINGS)
@require_POST
def settings_profile_type(request: HttpRequest) -> HttpResponse:
    form = ProfileTypeForm(request.POST)
    if form.is_valid():
        customer = customer_update_profile_type(customer=acting_customer(request), actor=request.user,
                                                ip=client_ip(request), **form.cleaned_data)
        if customer.verification_status == Customer.Verification.PENDING:
            messages.info(request, _("Company details saved. Our staff will verify them; payments wait until then."))
        else:
            messages.success(request, _("Profile type saved."))
        return _back("accounts:settings_profile", "profile-type")
    return _profile_page(request, profile_type_form=form)


@customer_view(Area.SETTINGS)
def settings_preferences(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    initial = {"newsletter": customer.newsletter, "low_balance_threshold": customer.low_balance_threshold,
               "auto_renew_default": "on" if customer.auto_renew_default else "off",
               "site_currency": customer.site_currency, "pay_without_login": customer.pay_without_login,
               "language": customer.language, "time_zone": customer.timezone}
    form = PreferencesForm(request.POST or None, initial=initial, account_currency=customer.currency)
    if request.method == "POST" and form.is_valid():
        try:
            customer_update_preferences(customer=customer, actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            translation.activate(form.cleaned_data["language"])
            if form.cleaned_data["time_zone"]:
                timezone.activate(zoneinfo.ZoneInfo(form.cleaned_data["time_zone"]))
            messages.success(request, _("Preferences saved."))
            response = _back("accounts:settings_preferences")
            response.set_cookie(settings.LANGUAGE_COOKIE_NAME, form.cleaned_data["language"],
                                max_age=365 * 24 * 3600, samesite="Lax")
            return response
    return _settings_render(request, "preferences", "accounts/settings/preferences.html", {"form": form})


@customer_view(Area.SETTINGS)
def settings_email_routing(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    initial = {"email_billing": customer.email_billing, "email_support": customer.email_support,
               "email_abuse": customer.email_abuse}
    form = EmailRoutingForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            customer_update_email_routing(customer=customer, actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, _("Email addresses saved."))
            return _back("accounts:settings_email")
    owner = selectors.customer_owner(customer=customer)
    return _settings_render(request, "email", "accounts/settings/email_routing.html",
                            {"form": form, "account_email": owner.email if owner else ""})


def _qr_svg(data: str) -> str:
    import qrcode
    import qrcode.image.svg

    buffer = io.BytesIO()
    qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2).save(buffer)
    svg = buffer.getvalue().decode()
    return svg[svg.index("<svg"):]  # drop the XML declaration to inline it


def _security_page(request: HttpRequest, **forms) -> HttpResponse:
    from django_otp.plugins.otp_static.models import StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user, customer = request.user, acting_customer(request)
    setup = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    context = {
        "otp_enabled": otp_enabled(user),
        "otp_setup": setup,
        "otp_setup_qr": mark_safe(_qr_svg(setup.config_url)) if setup else "",  # our own SVG, no user input
        "otp_setup_secret": b32encode(setup.bin_key).decode() if setup else "",
        "otp_confirm_form": forms.get("otp_confirm_form") or OTPTokenForm(),
        "otp_disable_form": forms.get("otp_disable_form") or TOTPDisableForm(),
        "recovery_codes": request.session.pop("recovery_codes_once", None),
        "recovery_left": StaticToken.objects.filter(device__user=user).count(),
        "previous_login": selectors.previous_login(user=user) if customer.show_last_login else None,
        "social_providers": selectors.social_providers(request),
        "social_accounts": (social_accounts := selectors.social_accounts_for(user=user)),
        "linked_ids": {account.provider for account in social_accounts},
        "has_password": user.has_usable_password(),
    }
    if role_allows(user, Area.SETTINGS):
        context.update({
            "code_word_form": forms.get("code_word_form") or CodeWordForm(),
            "ip_form": forms.get("ip_form") or IPAllowlistForm(initial={"ip_allowlist": customer.ip_allowlist}),
            "login_options_form": forms.get("login_options_form") or LoginOptionsForm(initial={
                "show_last_login": customer.show_last_login, "login_alerts": customer.login_alerts}),
            "current_ip": client_ip(request),
        })
    return _settings_render(request, "security", "accounts/settings/security.html", context)


@customer_view(Area.ACCOUNT)
def settings_security(request: HttpRequest) -> HttpResponse:
    return _security_page(request)


@customer_view(Area.SETTINGS)
@require_POST
def settings_code_word(request: HttpRequest) -> HttpResponse:
    form = CodeWordForm(request.POST)
    if form.is_valid():
        try:
            code_word_set(customer=acting_customer(request), actor=request.user,
                          code_word=form.cleaned_data["code_word"], ip=client_ip(request))
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, _("Code word saved. It cannot be viewed or changed; our staff can only check it."))
            return _back("accounts:settings_security", "code-word")
    return _security_page(request, code_word_form=form)


@customer_view(Area.SETTINGS)
@require_POST
@recent_auth_required(back="accounts:settings_security")
def settings_ip_allowlist(request: HttpRequest) -> HttpResponse:
    form = IPAllowlistForm(request.POST)
    if form.is_valid():
        try:
            customer = ip_allowlist_set(
                customer=acting_customer(request), actor=request.user, text=form.cleaned_data["ip_allowlist"],
                current_ip=client_ip(request), lockout_confirmed=form.cleaned_data["confirm_lockout"])
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            if customer.ip_allowlist:
                messages.success(request, _("IP restriction saved. Access is allowed only from the listed addresses."))
            else:
                messages.success(request, _("IP restriction removed: access is allowed from any address."))
            return _back("accounts:settings_security", "ip-restriction")
    return _security_page(request, ip_form=form)


@customer_view(Area.SETTINGS)
@require_POST
def settings_login_options(request: HttpRequest) -> HttpResponse:
    form = LoginOptionsForm(request.POST)
    if form.is_valid():
        customer_update_login_options(customer=acting_customer(request), actor=request.user,
                                      ip=client_ip(request), **form.cleaned_data)
        messages.success(request, _("Login options saved."))
        return _back("accounts:settings_security", "login-options")
    return _security_page(request, login_options_form=form)


@customer_view(Area.ACCOUNT)
@require_POST
def settings_2fa_start(request: HttpRequest) -> HttpResponse:
    try:
        totp_setup_start(user=request.user)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    return _back("accounts:settings_security", "two-factor")


@customer_view(Area.ACCOUNT)
@require_POST
def settings_2fa_confirm(request: HttpRequest) -> HttpResponse:
    form = OTPTokenForm(request.POST)
    if form.is_valid():
        try:
            codes = totp_setup_confirm(user=request.user, token=form.cleaned_data["token"],
                                       ip=client_ip(request))
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            request.session["recovery_codes_once"] = codes
            messages.success(request, _("Two-factor authentication is on. Save your recovery codes now."))
            return _back("accounts:settings_security", "two-factor")
    return _security_page(request, otp_confirm_form=form)


@customer_view(Area.ACCOUNT)
@require_POST
def settings_2fa_disable(request: HttpRequest) -> HttpResponse:
    form = TOTPDisableForm(request.POST)
    if form.is_valid():
        try:
            totp_disable(user=request.user, ip=client_ip(request), **form.cleaned_data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, _("Two-factor authentication is off."))
            return _back("accounts:settings_security", "two-factor")
    return _security_page(request, otp_disable_form=form)


@customer_view(Area.ACCOUNT)
def password_change(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        # Keeps this session; every other session of the user fails the session-hash check and ends.
        update_session_auth_hash(request, form.user)
        password_changed_record(user=form.user, ip=client_ip(request))
        messages.success(request, _("Your password has been changed. Your other sessions were logged out."))
        return redirect("accounts:password_change")
    return _settings_render(request, "password", "accounts/settings/password.html", {"form": form})


ACTIVITY_PAGE_SIZE = 25


@customer_view(Area.ACCOUNT)
def activity(request: HttpRequest) -> HttpResponse:
    events = selectors.activity_for(customer=acting_customer(request), user=request.user)
    page = Paginator(events, ACTIVITY_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{"event": event, "label": activity_label(event)} for event in page]
    return _settings_render(request, "activity", "accounts/settings/activity.html", {"page": page, "rows": rows})


@customer_view(Area.SETTINGS)
def trusted_users(request: HttpRequest) -> HttpResponse:
    customer = acting_customer(request)
    if request.method == "POST" and not recently_authenticated(request):  # inviting a login is a security change
        return recent_auth_required(back="accounts:trusted_users")(trusted_users)(request)
    form = TrustedUserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = trusted_user_services.trusted_user_invite(customer=customer, actor=request.user, ip=client_ip(request),
                                                **form.cleaned_data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, _("%(user)s was added. We emailed them a link to set their password.") % {
                "user": user.username})
            return _back("accounts:trusted_users")
    return _settings_render(request, "users", "accounts/settings/trusted_users.html", {
        "form": form, "users": list(selectors.customer_users(customer=customer)), "role_choices": User.Role.choices,
    })


@customer_view(Area.SETTINGS)
@require_POST
@recent_auth_required(back="accounts:trusted_users")
def trusted_user_role(request: HttpRequest, user_id: int) -> HttpResponse:
    customer = acting_customer(request)
    target = selectors.customer_user_get(customer=customer, user_id=user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a role."))
    else:
        try:
            trusted_user_services.trusted_user_set_role(customer=customer, actor=request.user, user_id=target.pk,
                                           role=form.cleaned_data["role"], ip=client_ip(request))
        except ValidationError as error:
            messages.error(request, error.messages[0])
        else:
            messages.success(request, _("Role of %(user)s saved.") % {"user": target.username})
    return _back("accounts:trusted_users")


@customer_view(Area.SETTINGS)
@require_POST
def trusted_user_revoke(request: HttpRequest, user_id: int) -> HttpResponse:
    customer = acting_customer(request)
    target = selectors.customer_user_get(customer=customer, user_id=user_id)
    try:
        trusted_user_services.trusted_user_revoke(customer=customer, actor=request.user, user_id=target.pk, ip=client_ip(request))
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, _("Access of %(user)s revoked.") % {"user": target.username})
    return _back("accounts:trusted_users")


@customer_view(Area.SETTINGS)
@require_POST
def trusted_user_resend(request: HttpRequest, user_id: int) -> HttpResponse:
    target = selectors.customer_user_get(customer=acting_customer(request), user_id=user_id)
    if target.has_usable_password() or not target.is_active:
        messages.error(request, _("This user has already set a password."))
    else:
        trusted_user_services.invitation_send(user=target, invited_by=request.user)
        messages.success(request, _("Invitation sent again to %(email)s.") % {"email": target.email})
    return _back("accounts:trusted_users")


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Public: the invited person sets a password (GET shows the form, POST saves it)."""
    try:
        invited = trusted_user_services.invitation_user(token=token)
    except ValidationError as error:
        return render(request, "accounts/invitation.html", {"error": error.messages[0]}, status=400)
    form = SetPasswordForm(invited, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            trusted_user_services.invitation_accept(token=token, password=form.cleaned_data["new_password1"])
        except ValidationError as error:
            return render(request, "accounts/invitation.html", {"error": error.messages[0]}, status=400)
        messages.success(request, _("Your password is set. Log in with your username %(username)s.") % {
            "username": invited.username})
        return redirect("accounts:login")
    return render(request, "accounts/invitation.html", {"form": form, "invited": invited})


# --- Login with a second factor ------------------------------------------------------------------------

OTP_PENDING = "otp_pending_login"
OTP_PENDING_MAX_AGE = 300  # seconds between the password and the code


class LoginView(auth_views.LoginView):
    """Password first; users with a confirmed OTP device then pass `login_verify` before a session exists."""

    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "social_providers": selectors.social_providers(self.request)}

    def post(self, request, *args, **kwargs):
        if selectors.login_ip_blocked(client_ip(request)):
            return render(request, settings.AXES_LOCKOUT_TEMPLATE, status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        user = form.get_user()
        if otp_enabled(user):
            self.request.session[OTP_PENDING] = {
                "user": user.pk, "backend": user.backend, "next": self.get_success_url(), "at": time.time(),
                "attempts": 0,
            }
            return redirect("accounts:login_verify")
        return super().form_valid(form)

    def form_invalid(self, form):
        if form.has_error(NON_FIELD_ERRORS, "ip_restricted"):
            login_failure_record(username=form.cleaned_data.get("username", ""), ip=client_ip(self.request),
                                 reason="ip_restricted")
        return super().form_invalid(form)


def login_verify(request: HttpRequest) -> HttpResponse:
    from axes.handlers.proxy import AxesProxyHandler
    from django_otp import login as otp_login

    pending = request.session.get(OTP_PENDING)
    if not pending or time.time() - pending["at"] > OTP_PENDING_MAX_AGE:
        request.session.pop(OTP_PENDING, None)
        messages.info(request, _("Please log in again."))
        return redirect("accounts:login")
    user = User.objects.select_related("customer").filter(pk=pending["user"], is_active=True).first()
    if user is None:
        request.session.pop(OTP_PENDING, None)
        return redirect("accounts:login")
    credentials = {"username": user.username}
    if not AxesProxyHandler.is_allowed(request, credentials) or selectors.login_ip_blocked(client_ip(request)):
        request.session.pop(OTP_PENDING, None)
        return render(request, settings.AXES_LOCKOUT_TEMPLATE, status=429)
    form = OTPLoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = otp_match(user=user, token=form.cleaned_data["token"])
        if device is not None:
            del request.session[OTP_PENDING]
            user.backend = pending["backend"]
            auth_login(request, user)
            otp_login(request, device)
            if device.persistent_id.startswith("otp_static"):
                messages.warning(request, _("You used a recovery code; it cannot be used again."))
            next_url = pending["next"]
            if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
                next_url = reverse(settings.LOGIN_REDIRECT_URL)
            return redirect(next_url)
        # A wrong code counts towards the django-axes lockout like a wrong password.
        user_login_failed.send(sender=__name__, credentials={**credentials, "second_factor": True}, request=request)
        pending["attempts"] += 1
        if pending["attempts"] >= settings.OTP_LOGIN_MAX_ATTEMPTS:
            request.session.pop(OTP_PENDING, None)
            messages.error(request, _("Too many wrong codes. Please log in again."))
            return redirect("accounts:login")
        request.session[OTP_PENDING] = pending
        form.add_error("token", _("The code is not correct."))
    return render(request, "accounts/login_verify.html", {"form": form, "pending_user": user})


@method_decorator(limit_posts("password_reset", ip=client_ip, account=lambda request: request.POST.get("email", "")),
                  name="dispatch")
class PasswordResetView(auth_views.PasswordResetView):
    form_class = OutboxPasswordResetForm
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    html_email_template_name = "accounts/email/password_reset.html"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")


# --- Avatar, theme, social logins --------------------------------------------------------------------------

@customer_view(Area.ACCOUNT)
@require_POST
def settings_avatar(request: HttpRequest) -> HttpResponse:
    form = AvatarForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            user_avatar_set(user=request.user, upload=form.cleaned_data["avatar"])
        except ValidationError as error:
            _apply_errors(form, ValidationError({"avatar": error.messages}))
        else:
            messages.success(request, _("Your avatar is updated."))
            return _back("accounts:settings_profile", "avatar")
    return _profile_page(request, avatar_form=form)


@customer_view(Area.ACCOUNT)
@require_POST
def settings_avatar_remove(request: HttpRequest) -> HttpResponse:
    user_avatar_remove(user=request.user)
    messages.success(request, _("Your avatar is removed."))
    return _back("accounts:settings_profile", "avatar")


@customer_view(Area.ACCOUNT)
def avatar(request: HttpRequest, user_id: int) -> HttpResponse:
    """Avatars are private files: only users of the same customer see them."""
    from django.http import FileResponse, Http404

    target = selectors.customer_user_get(customer=acting_customer(request), user_id=user_id)
    if not target.avatar:
        raise Http404
    try:
        handle = target.avatar.open("rb")
    except FileNotFoundError:
        raise Http404
    content_type = "image/png" if target.avatar.name.endswith(".png") else "image/jpeg"
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "private, max-age=86400"  # the URL changes with the file (?v=name)
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_POST
def theme_set(request: HttpRequest) -> HttpResponse:
    """Light/dark colour mode, remembered on the user (staff too)."""
    if not request.user.is_authenticated:
        return redirect("accounts:login")
    try:
        user_set_theme(user=request.user, theme=request.POST.get("theme", ""))
    except ValidationError as error:
        messages.error(request, error.messages[0])
    return _safe_next(request)


@customer_view(Area.ACCOUNT)
@require_POST
def settings_social_unlink(request: HttpRequest, account_id: int) -> HttpResponse:
    from django.http import Http404

    if account_id not in {account.pk for account in selectors.social_accounts_for(user=request.user)}:
        raise Http404
    try:
        provider = social_account_unlink(user=request.user, account_id=account_id, ip=client_ip(request))
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, _("Login with %(provider)s is unlinked.") % {"provider": provider})
    return _back("accounts:settings_security", "social-login")


# --- Staff second factor ---------------------------------------------------------------------------------

@staff_member_required
@require_http_methods(["GET", "POST"])
def staff_two_factor(request: HttpRequest) -> HttpResponse:
    """A staff login enrols TOTP here (customers use the security settings); the admin login then asks
    for the code (accounts.forms.StaffLoginForm). Turning it off again is another staff member's audited
    admin action, so a stolen session cannot remove it."""
    from django.contrib import admin
    from django_otp.plugins.otp_static.models import StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = request.user
    form = OTPTokenForm(request.POST if request.POST.get("step") == "confirm" else None)
    if request.method == "POST":
        try:
            if request.POST.get("step") == "start":
                totp_setup_start(user=user)
                return redirect("accounts:staff_two_factor")
            if form.is_valid():
                request.session["recovery_codes_once"] = totp_setup_confirm(
                    user=user, token=form.cleaned_data["token"], ip=client_ip(request))
                messages.success(request, _("Two-factor authentication is on. Save your recovery codes now."))
                return redirect("accounts:staff_two_factor")
        except ValidationError as error:
            if form.is_bound:
                _apply_errors(form, error)
            else:
                messages.error(request, error.messages[0])
    setup = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return render(request, "accounts/staff_two_factor.html", {
        **admin.site.each_context(request), "title": _("Two-factor authentication"),
        "otp_enabled": otp_enabled(user), "otp_setup": setup, "form": form,
        "otp_setup_qr": mark_safe(_qr_svg(setup.config_url)) if setup else "",  # our own SVG, no user input
        "otp_setup_secret": b32encode(setup.bin_key).decode() if setup else "",
        "recovery_codes": request.session.pop("recovery_codes_once", None),
        "recovery_left": StaticToken.objects.filter(device__user=user).count(),
    })


@login_required
@require_http_methods(["GET", "POST"])
def reauth(request: HttpRequest) -> HttpResponse:
    """Confirm the password (or a 2FA code) before a security-sensitive change
    (accounts.session_policy.recent_auth_required); wrong answers count towards the lockout."""
    from django.contrib.auth.signals import user_login_failed

    from .session_policy import mark_authenticated

    form = ReauthForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if form.is_valid():
            mark_authenticated(request)
            next_url = request.GET.get("next", "")
            if not next_url.startswith("/") or not url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
                next_url = "/"
            return HttpResponseRedirect(next_url)
        user_login_failed.send(sender=__name__, credentials={"username": request.user.username}, request=request)
    return render(request, "accounts/reauth.html", {"form": form})
