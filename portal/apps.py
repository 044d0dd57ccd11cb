from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    """The top layer: dashboard composition, the staff back office (portal/admin.py) and reports."""

    name = "portal"
    verbose_name = _("Back office")

    def ready(self):
        from django.contrib import admin

        from . import checks  # noqa: F401  (registers the deployment checks)
        from .admin_otp import require_staff_second_factor
        from .third_party_admin import secure_third_party_admins

        secure_third_party_admins(admin.site)
        require_staff_second_factor(admin.site)
