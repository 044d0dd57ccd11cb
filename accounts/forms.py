import functools
import re
from decimal import Decimal

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms
from django.contrib.auth import password_validation
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.choices import BaseChoiceIterator
from django.utils.html import format_html, format_html_join
from django.core.validators import RegexValidator
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from core.form_renderer import plain_widgets
from core.widgets import LongSelect

from .models import Customer, User
from .phone import PHONE_EXAMPLE, normalize_phone
from .services.registration import email_link_send

# Digits with an optional sign and decimal point: what people type as an amount. Decimal() also
# takes "1e3", "Infinity" and "NaN", which no one means as money.
PLAIN_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


class PlainDecimalField(forms.DecimalField):
    """A DecimalField for amounts that refuses exponent notation ("1e3") with the usual "Enter a number."."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip() and not PLAIN_NUMBER_RE.match(value.strip()):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


username_validator = RegexValidator(
    r"^[A-Za-z0-9_.-]{3,30}$",
    _("Use 3 to 30 characters: Latin letters, digits, dots, hyphens and underscores."),
)


class NewLoginFormMixin:
    """A new login's username and email must be free (case-insensitively): signup and trusted users."""

    def clean_username(self):
        username = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(_("This username is already taken."), code="taken")
        return username

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(_("An account with this email already exists."), code="taken")
        return email


class RegistrationForm(NewLoginFormMixin, forms.Form):
    username = forms.CharField(
        label=_("Username"), max_length=30, validators=[username_validator],
        help_text=_("Used to log in. It cannot be changed later."),
    )
    email = forms.EmailField(label=_("Email"), max_length=254)
    first_name = forms.CharField(label=_("First name"), max_length=150)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    password1 = forms.CharField(label=_("Password"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(label=_("Repeat password"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args, policies=(), **kwargs):
        """`policies`: the current privacy policy and terms; signing up accepts exactly these versions."""
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.add_input(Submit("submit", _("Create account"), css_class="w-100"))
        self.policies = list(policies)
        if self.policies:
            links = format_html_join(", ", '<a href="{}" target="_blank">{}</a>',
                                     ((reverse("accounts:policy", args=[p.kind]), p.title) for p in self.policies))
            self.fields["accept_policies"] = forms.BooleanField(
                label=format_html("{} {}", _("I have read and accept:"), links),
                error_messages={"required": _("Please accept the documents to create an account.")})
            self.fields["policy_ids"] = forms.CharField(widget=forms.HiddenInput, required=False,
                                                        initial=",".join(str(p.pk) for p in self.policies))

    def clean_policy_ids(self) -> list[int]:
        shown = {int(pk) for pk in self.cleaned_data["policy_ids"].split(",") if pk.strip().isdigit()}
        current = {p.pk for p in self.policies}
        if shown != current:  # a new version was published while the form was open: show and accept that one
            self.data = self.data.copy()
            self.data[self.add_prefix("policy_ids")] = ",".join(str(pk) for pk in sorted(current))
            raise forms.ValidationError(_("The document was updated meanwhile. Please review the current version."))
        return sorted(current)

    def clean(self):
        cleaned = super().clean()
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", _("The two passwords do not match."))
        elif p1:
            probe = User(username=cleaned.get("username", ""), email=cleaned.get("email", ""),
                         first_name=cleaned.get("first_name", ""), last_name=cleaned.get("last_name", ""))
            try:
                password_validation.validate_password(p1, probe)
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class OutboxPasswordResetForm(PasswordResetForm):
    """Django's reset form, but the mail goes through the outbox (`email_requested`), never straight to SMTP.

    The link is built from PORTAL_BASE_URL, never the request's Host header (a forged Host would send the
    victim a link to the attacker's site). Staff logins are not reset here: they have no customer
    and their password is a back-office matter (an administrator sets it)."""

    def get_users(self, email):
        return (user for user in super().get_users(email) if not user.is_staff and not user.is_superuser)

    def send_mail(self, subject_template_name, email_template_name, context, from_email, to_email,
                  html_email_template_name=None):
        from urllib.parse import urlsplit

        from django.conf import settings

        base = urlsplit(settings.PORTAL_BASE_URL)
        context = {**context, "protocol": base.scheme, "domain": base.netloc}
        user = context["user"]
        email_link_send(
            purpose="password-reset", token=f"{context['uid']}/{context['token']}", to=to_email,
            subject="".join(render_to_string(subject_template_name, context).splitlines()),
            body_text=render_to_string(email_template_name, context),
            body_html=render_to_string(html_email_template_name, context) if html_email_template_name else "",
            customer=user.customer,
        )


class LoginForm(AuthenticationForm):
    username = forms.CharField(label=_("Username or email"), max_length=254,
                               widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}))

    error_messages = {
        "invalid_login": _("Wrong username/email or password."),
        "inactive": _("This account is disabled."),
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.add_input(Submit("submit", _("Log in"), css_class="w-100"))

    def confirm_login_allowed(self, user):
        from .client_ip import client_ip
        from .ip_allowlist import ip_permitted

        super().confirm_login_allowed(user)
        if user.customer_id and not ip_permitted(user.customer.ip_allowlist, client_ip(self.request)):
            raise forms.ValidationError(
                _("Access to this account from your IP address %(ip)s is restricted by the account owner."),
                code="ip_restricted", params={"ip": client_ip(self.request)})


# --- Settings -------------------------------------------------------------------------------------------

def country_choices() -> list[tuple[str, str]]:
    """ISO 3166 countries named in the active language (Babel's CLDR data, no extra package)."""
    from django.utils.translation import get_language

    return list(_country_choices((get_language() or "en").split("-")[0]))


@functools.cache
def _country_choices(language: str) -> tuple[tuple[str, str], ...]:
    from babel import Locale

    locale = Locale.parse(language)
    names = {code: name for code, name in locale.territories.items() if len(code) == 2 and code.isalpha()
             and code not in {"EU", "EZ", "UN", "QO", "XA", "XB", "XK", "ZZ"}}
    return (("", "—"), *sorted(names.items(), key=lambda item: item[1]))


def currency_precision(currency: str) -> int:
    from babel.numbers import get_currency_precision

    return get_currency_precision(currency)


class ContactForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    last_name = forms.CharField(label=_("Last name"), max_length=150)
    first_name = forms.CharField(label=_("First name"), max_length=150)
    email = forms.EmailField(label=_("Email"), max_length=254,
                             help_text=_("A new address takes effect after you open the link we send to it."))


class PhoneForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    phone = forms.CharField(label=_("Mobile number"), max_length=32,
                            widget=forms.TextInput(attrs={"placeholder": PHONE_EXAMPLE, "autocomplete": "tel"}))
    method = forms.ChoiceField(label=_("Send the code by"), widget=forms.RadioSelect, required=False, choices=(
        ("sms", _("Text message (SMS)")),
        ("call", _("Phone call: the code is the last 4 digits of the calling number")),
    ))

    def __init__(self, *args, region: str = "", methods: tuple[str, ...] = ("sms",), **kwargs):
        super().__init__(*args, **kwargs)
        self.region = region
        self.methods = methods
        field = self.fields["method"]
        field.choices = [(value, label) for value, label in field.choices if value in methods]
        field.initial = methods[0]
        if len(methods) < 2:  # nothing to choose
            field.widget = forms.HiddenInput()
        if "sms" not in methods:  # a call reaches landlines too
            self.fields["phone"].label = _("Phone number")

    def clean_method(self) -> str:
        return self.cleaned_data.get("method") or self.methods[0]

    def clean(self):
        cleaned = super().clean()
        raw = cleaned.get("phone")
        if raw:
            try:
                cleaned["phone"] = normalize_phone(raw, region=self.region, mobile_only=cleaned.get("method") != "call")
            except ValueError as error:
                self.add_error("phone", forms.ValidationError(str(error), code="invalid"))
        return cleaned


class PhoneCodeForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    code = forms.RegexField(label=_("Code"), regex=r"^\s*\d{4,6}\s*$", max_length=10,
                            error_messages={"invalid": _("Enter the digits of the code.")},
                            widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}))


class AddressForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    street = forms.CharField(label=_("Address"), max_length=255)
    city = forms.CharField(label=_("City"), max_length=120)
    postcode = forms.CharField(label=_("Postcode"), max_length=20, required=False)
    country = forms.ChoiceField(label=_("Country"), choices=(), widget=LongSelect)

    def __init__(self, *args, country_locked: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["country"].choices = _country_pairs((get_language() or "en").split("-")[0])
        if country_locked:
            self.fields["country"].disabled = True
            self.fields["country"].required = False


class ProfileTypeForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    profile_type = forms.ChoiceField(label=_("Profile type"), choices=Customer.ProfileType.choices,
                                     widget=forms.RadioSelect)
    company_name = forms.CharField(label=_("Company name"), max_length=255, required=False)
    company_registration_number = forms.CharField(label=_("Registration number"), max_length=64, required=False)
    company_vat_number = forms.CharField(label=_("VAT number"), max_length=64, required=False)

    def clean_company_vat_number(self) -> str:
        """An EU number must pass python-stdnum's format and check-digit test; others are compacted."""
        from stdnum.eu import vat
        from stdnum.exceptions import ValidationError as StdnumError

        number = "".join((self.cleaned_data.get("company_vat_number") or "").split()).upper()
        if number and number[:2].lower() in vat.MEMBER_STATES:
            try:
                number = vat.validate(number)
            except StdnumError:
                raise forms.ValidationError(_("This is not a valid VAT number for its country (check the digits)."))
        return number

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("profile_type") == "company":
            for field in ("company_name", "company_registration_number"):
                if not (cleaned.get(field) or "").strip():
                    self.add_error(field, _("Required for a company profile."))
        return cleaned


class PreferencesForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    newsletter = forms.BooleanField(label=_("Subscribe to the newsletter"), required=False)
    low_balance_threshold = PlainDecimalField(
        label=_("Low balance alert threshold"), min_value=0, max_digits=18, decimal_places=6,
        help_text=_("We notify you when your balance falls below this amount. 0 turns the alert off."))
    auto_renew_default = forms.TypedChoiceField(
        label=_("Auto-renewal of orders"), coerce=lambda v: v == "on",
        choices=[("on", _("Enabled")), ("off", _("Disabled"))],
        help_text=_("The default for new orders: services renew automatically while the balance covers them."))
    site_currency = forms.ChoiceField(label=_("Site currency"), choices=())
    # The currency the threshold was typed in: the account currency when the page was shown.
    threshold_currency = forms.CharField(widget=forms.HiddenInput, required=False)
    pay_without_login = forms.BooleanField(
        label=_("Payment without authorization"), required=False,
        help_text=_("Allow paying invoices from a link without logging in."))
    language = forms.ChoiceField(label=_("Interface language"), choices=(),
                                 help_text=_("Used for pages and for emails we send you."))
    time_zone = forms.ChoiceField(label=_("Time zone"), choices=(), required=False, widget=LongSelect,
                                  help_text=_("Dates and times in the portal are shown in this time zone."))

    def __init__(self, *args, account_currency: str, **kwargs):
        from django.conf import settings

        super().__init__(*args, **kwargs)
        self.account_currency = account_currency
        self.fields["threshold_currency"].initial = account_currency
        self.fields["site_currency"].choices = [(c, c) for c in settings.CURRENCIES]
        self.fields["language"].choices = [(code, _(name)) for code, name in settings.LANGUAGES]
        self.fields["time_zone"].choices = _time_zone_pairs()
        self.fields["low_balance_threshold"].label = _("Low balance alert threshold, %(currency)s") % {
            "currency": account_currency}

    def clean_threshold_currency(self):
        return self.cleaned_data.get("threshold_currency") or self.account_currency

    def clean_time_zone(self):
        return self.cleaned_data.get("time_zone") or None  # not sent: keep the saved one

    def clean_low_balance_threshold(self):
        value = self.cleaned_data["low_balance_threshold"]
        places = currency_precision(self.account_currency)
        if -value.as_tuple().exponent > places:
            raise forms.ValidationError(
                _("Use at most %(places)d decimal places for %(currency)s.") % {
                    "places": places, "currency": self.account_currency}, code="precision")
        if value >= 10 ** 12:
            raise forms.ValidationError(_("This amount is too large."), code="too_large")
        return value.quantize(Decimal(1).scaleb(-places))


@functools.cache
def _time_zone_choices() -> tuple[tuple[str, str], ...]:
    from .selectors import available_time_zones

    return (*((name, name.replace("_", " ")) for name in sorted(available_time_zones())
              if "/" in name and not name.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/"))), ("UTC", "UTC"))


def time_zone_choices() -> list[tuple[str, str]]:
    """IANA zones from the system's zoneinfo (computed once per process)."""
    return list(_time_zone_choices())


class _Pairs(BaseChoiceIterator):
    """Choices that are already flat (value, label) pairs: ChoiceField's setter keeps an iterator as it is
    instead of normalizing the ~250 countries or ~600 time zones again for every form shown."""

    def __init__(self, pairs: tuple[tuple[str, str], ...]):
        self.pairs = pairs

    def __iter__(self):
        return iter(self.pairs)


@functools.cache
def _country_pairs(language: str) -> _Pairs:
    return _Pairs(_country_choices(language))


@functools.cache
def _time_zone_pairs() -> _Pairs:
    return _Pairs(_time_zone_choices())


class EmailRoutingForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    email_billing = forms.EmailField(label=_("Accounts and orders"), required=False,
                                     help_text=_("Invoices, payments and service notices."))
    email_support = forms.EmailField(label=_("Technical support"), required=False,
                                     help_text=_("Replies from our support team."))
    email_abuse = forms.EmailField(label=_("Abuse"), required=False,
                                   help_text=_("Complaints about your services that need your action."))


class CodeWordForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    code_word = forms.CharField(label=_("Code word"), min_length=4, max_length=64,
                                widget=forms.PasswordInput(attrs={"autocomplete": "off"}))
    code_word2 = forms.CharField(label=_("Repeat the code word"), max_length=64,
                                 widget=forms.PasswordInput(attrs={"autocomplete": "off"}))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("code_word") and cleaned.get("code_word") != cleaned.get("code_word2"):
            self.add_error("code_word2", _("The code words do not match."))
        return cleaned


class IPAllowlistForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    ip_allowlist = forms.CharField(
        label=_("Allowed IP addresses"), required=False, max_length=20000,
        widget=forms.Textarea(attrs={"rows": 6, "class": "font-monospace", "spellcheck": "false",
                                     "placeholder": "192.15.3.2\n10.10.1.0/24\n192.168.0.1-192.168.0.10\n2001:db8::/32"}),
        help_text=_("One IP address, range (with a hyphen) or CIDR network per line; # starts a comment. "
                    "Leave empty to allow access from anywhere."))
    confirm_lockout = forms.BooleanField(
        label=_("I understand that my current IP address is not in the list and I will lose access"),
        required=False)

    def clean_ip_allowlist(self):
        from .ip_allowlist import AllowlistError, parse_allowlist

        text = self.cleaned_data["ip_allowlist"]
        try:
            parse_allowlist(text)
        except AllowlistError as error:
            raise forms.ValidationError([str(e) for e in error.errors], code="invalid")
        if text.count("\n") >= 500:
            raise forms.ValidationError(_("Use at most 500 lines."), code="too_long")
        return text


class LoginOptionsForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    show_last_login = forms.BooleanField(
        label=_("Display last IP"), required=False,
        help_text=_("After logging in, show the IP address and time of the previous login."))
    login_alerts = forms.BooleanField(
        label=_("Login notification"), required=False,
        help_text=_("Email me every time someone logs in to the account, with the IP address and time."))


class OTPTokenForm(forms.Form):
    token = forms.CharField(label=_("Code"), max_length=16,
                            widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code",
                                                          "autofocus": True}))


class OTPLoginForm(OTPTokenForm):
    token = forms.CharField(label=_("Authentication code or recovery code"), max_length=16,
                            widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}))


class TOTPDisableForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    password = forms.CharField(label=_("Password"), strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    token = forms.CharField(label=_("Authentication code or recovery code"), max_length=16)


class TrustedUserForm(NewLoginFormMixin, forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    username = forms.CharField(label=_("Username"), max_length=30, validators=[username_validator],
                               help_text=_("Their login. It cannot be changed later."))
    email = forms.EmailField(label=_("Email"), max_length=254,
                             help_text=_("We send the invitation link here."))
    first_name = forms.CharField(label=_("First name"), max_length=150)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    role = forms.ChoiceField(label=_("Role"), choices=User.Role.choices)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=User.Role.choices)


class StaffReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason shown to the customer"), widget=forms.Textarea(attrs={"rows": 3}))


class StaffCodeWordForm(forms.Form):
    candidate = forms.CharField(label=_("Code word given by the caller"), max_length=64)


class AvatarForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    avatar = forms.FileField(label=_("Image"), help_text=_("PNG, JPEG, GIF or WebP, up to 2 MB. We resize it to "
                                                           "256×256 and remove the photo's metadata."),
                             widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/gif,image/webp"}))


class DeletionRequestForm(forms.Form):
    default_renderer = plain_widgets  # core/form_renderer.py
    reason = forms.CharField(label=_("Why are you leaving? (optional)"), required=False, max_length=2000,
                             widget=forms.Textarea(attrs={"rows": 3}))
    password = forms.CharField(label=_("Your password"), strip=False, required=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    confirm = forms.BooleanField(label=_("I understand that my services will be terminated and my personal data "
                                         "anonymized; this cannot be undone"))

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if not user.has_usable_password():
            del self.fields["password"]

    def clean_password(self):
        password = self.cleaned_data.get("password", "")
        if not self.user.check_password(password):
            raise forms.ValidationError(_("The password is not correct."), code="wrong")
        return password


class StaffLoginForm(AdminAuthenticationForm):
    """The admin's login form with the second factor. With ADMIN_REQUIRE_OTP (the default) every staff
    login needs an enrolled authenticator (`manage.py staff_totp`, or /accounts/staff/two-factor/) and its
    code or a recovery code; with it off, only logins that enrolled one. A wrong code counts towards the
    django-axes lockout like a wrong password. The device that accepted the code marks the session as
    verified (django-otp), which the admin requires (portal.admin_otp)."""

    otp_token = forms.CharField(label=_("Two-factor code"), required=False, max_length=16,
                                help_text=_("The code from your authenticator app, or a recovery code."),
                                widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))

    def confirm_login_allowed(self, user):
        from django.conf import settings
        from django.contrib.auth.signals import user_login_failed
        from django_otp import DEVICE_ID_SESSION_KEY

        from .selectors import otp_enabled
        from .services.totp import otp_match

        super().confirm_login_allowed(user)
        if not otp_enabled(user):
            if settings.ADMIN_REQUIRE_OTP:
                raise forms.ValidationError(_("Staff need a second factor: ask an administrator to enrol your "
                                              "authenticator app (manage.py staff_totp)."), code="otp_not_enrolled")
            return
        device = otp_match(user=user, token=self.cleaned_data.get("otp_token", ""))
        if device is None:
            user_login_failed.send(sender=__name__, credentials={"username": user.username, "second_factor": True},
                                   request=self.request)
            raise forms.ValidationError(_("Enter the current code from your authenticator app, or a recovery code."),
                                        code="otp_required")
        if self.request is not None:
            # Kept through login()'s session key rotation; OTPMiddleware then sets request.user.is_verified().
            self.request.session[DEVICE_ID_SESSION_KEY] = device.persistent_id


class ReauthForm(forms.Form):
    """Confirm it is you: the password, or a code from the authenticator app (social-login users)."""

    password = forms.CharField(label=_("Password"), required=False, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}))
    token = forms.CharField(label=_("Or a code from your authenticator app"), required=False, max_length=16,
                            widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        from .selectors import otp_enabled

        if not otp_enabled(user):
            del self.fields["token"]
        self.helper = FormHelper()
        self.helper.add_input(Submit("submit", _("Confirm"), css_class="w-100"))

    def clean(self):
        from .services.totp import otp_match

        data = super().clean()
        password, token = data.get("password"), data.get("token")
        if password and self.user.check_password(password):
            return data
        if token and "token" in self.fields and otp_match(user=self.user, token=token) is not None:
            return data
        raise forms.ValidationError(_("The password or code is not correct."), code="invalid")
