"""Third-party admins made to follow the back office's rules: every action declares its permission and
no secret is readable by staff. Called from PortalConfig.ready(), after admin autodiscovery has
registered every app's admin (allauth's come after the portal in INSTALLED_APPS)."""
from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _


def _replace(site, model, model_admin) -> None:
    if site.is_registered(model):
        site.unregister(model)
    site.register(model, model_admin)


def secure_third_party_admins(site: admin.AdminSite) -> None:
    from allauth.account.admin import EmailAddressAdmin
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.admin import SocialAppAdmin, SocialAppForm
    from allauth.socialaccount.models import SocialApp, SocialToken
    from axes.admin import AccessAttemptAdmin
    from axes.models import AccessAttempt
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    # TOTP seeds, recovery codes and OAuth tokens sign a customer in: staff see "2FA on" on the user and
    # reset it with an audited action (accounts.admin.UserAdmin), never the secrets themselves.
    for model in (TOTPDevice, StaticDevice, SocialToken):
        if site.is_registered(model):
            site.unregister(model)

    class GuardedAccessAttemptAdmin(AccessAttemptAdmin):
        @admin.action(description=_("Clean up expired attempts"), permissions=["delete"])
        def cleanup_expired_attempts(self, request, queryset):
            return super().cleanup_expired_attempts(request, queryset)

    class GuardedEmailAddressAdmin(EmailAddressAdmin):
        @admin.action(description=_("Mark as verified"), permissions=["change"])
        def make_verified(self, request, queryset):
            return super().make_verified(request, queryset)

    class WriteOnlySecretForm(SocialAppForm):
        """The client secret can be replaced, never read back; left blank it stays as it is."""

        secret = forms.CharField(label=_("secret key"), required=False, max_length=191,
                                 widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                                 help_text=_("Stored, never shown. Leave blank to keep the current one."))

        def clean_secret(self):
            return self.cleaned_data["secret"] or (self.instance.secret if self.instance.pk else "")

    class WriteOnlySecretSocialAppAdmin(SocialAppAdmin):
        form = WriteOnlySecretForm

    _replace(site, AccessAttempt, GuardedAccessAttemptAdmin)
    _replace(site, EmailAddress, GuardedEmailAddressAdmin)
    _replace(site, SocialApp, WriteOnlySecretSocialAppAdmin)
