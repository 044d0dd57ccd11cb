"""Staff need a second factor (a confirmed TOTP device) to reach /admin/ when ADMIN_REQUIRE_OTP is on
(the default; tests switch it off except where they prove it).

The admin login asks for the code (django-otp's admin login form and template); an unverified session
is treated as not staff, so a password alone opens nothing. Staff enrol with `manage.py staff_totp`.
"""
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core import checks
from django_otp.admin import OTPAdminAuthenticationForm


class StaffOTPLoginForm(OTPAdminAuthenticationForm):
    def clean(self):
        if not settings.ADMIN_REQUIRE_OTP:
            return AdminAuthenticationForm.clean(self)
        return super().clean()

    def _chosen_device(self, user):
        """With one confirmed device (the usual case) the code alone is enough: no device picker step."""
        device = super()._chosen_device(user)
        if device is None:
            from django_otp import devices_for_user

            devices = list(devices_for_user(user, confirmed=True))
            device = devices[0] if len(devices) == 1 else None
        return device


def require_staff_second_factor(site) -> None:
    plain_has_permission = site.has_permission

    def has_permission(request) -> bool:
        verified = not settings.ADMIN_REQUIRE_OTP or request.user.is_verified()
        return plain_has_permission(request) and verified

    site.has_permission = has_permission
    site.login_form = StaffOTPLoginForm
    site.login_template = "otp/admin111/login.html"


@checks.register(checks.Tags.security, deploy=True)
def check_admin_second_factor(app_configs, **kwargs):
    if settings.ADMIN_REQUIRE_OTP:
        return []
    return [checks.Error("ADMIN_REQUIRE_OTP is off: staff reach /admin/ with a password only.", id="portal.E101")]
