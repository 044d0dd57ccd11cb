"""Staff need a second factor (a confirmed TOTP device) to reach /admin/ when ADMIN_REQUIRE_OTP is on
(the default; tests switch it off except where they prove it).

The admin login asks for the code (accounts.forms.StaffLoginForm: a TOTP code or a recovery code); an
unverified session is treated as not staff, so a password alone opens nothing. Staff enrol with
`manage.py staff_totp` or, once signed in, at /accounts/staff/two-factor/.
"""
from django.conf import settings
from django.core import checks


def require_staff_second_factor(site) -> None:
    """The admin login asks for the code (accounts.forms.StaffLoginForm, set in accounts/admin.py), and a
    session the code did not verify is treated as not staff."""
    plain_has_permission = site.has_permission

    def has_permission(request) -> bool:
        verified = not settings.ADMIN_REQUIRE_OTP or request.user.is_verified()
        return plain_has_permission(request) and verified

    site.has_permission = has_permission


@checks.register(checks.Tags.security, deploy=True)
def check_admin_second_factor(app_configs, **kwargs):
    if settings.ADMIN_REQUIRE_OTP:
        return []
    return [checks.Error("ADMIN_REQUIRE_OTP is off: staff reach /admin/ with a password only.", id="portal.E101")]
