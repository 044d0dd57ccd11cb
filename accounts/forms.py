from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from .models import User

username_validator = RegexValidator(
    r"^[A-Za-z0-9_.-]{3,30}$",
    _("Use 3 to 30 characters: Latin letters, digits, dots, hyphens and underscores."),
)


class RegistrationForm(forms.Form):
    username = forms.CharField(
        label=_("Username"), max_length=30, validators=[username_validator],
        help_text=_("Used to log in. It cannot be changed later."),
    )
    email = forms.EmailField(label=_("Email"), max_length=254)
    first_name = forms.CharField(label=_("First name"), max_length=150)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    password1 = forms.CharField(label=_("Password"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(label=_("Repeat password"), strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.add_input(Submit("submit", _("Create account"), css_class="w-100"))

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


class VerifyEmailForm(forms.Form):
    """Confirmation step: the link's GET only shows this form; the POST verifies."""

    token = forms.CharField(widget=forms.HiddenInput)
